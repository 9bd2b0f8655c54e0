// Package ratelimit limits requests per tenant or per credential, after
// authentication by package tenancy.
//
// A Limiter keeps a golang.org/x/time/rate token bucket per tenant (or per
// API key and JWT subject, with KeyByCredential), with rates per plan, idle
// buckets evicted and a hard cap on buckets, all in memory. It keys only on
// the tenancy.Principal the authentication middleware put in the context,
// never on a header the client chooses, so place its Handler after
// tenancy's:
//
//	limiter, err := ratelimit.New(ratelimit.Config{
//		Default: ratelimit.Rate{Requests: 100, Window: time.Minute},
//		Plans:   map[string]ratelimit.Rate{"pro": {Requests: 1000, Window: time.Minute}},
//		PlanOf:  func(p tenancy.Principal) string { return plans.Of(p.TenantID) },
//	})
//	http.Handle("/deals", auth.Handler(limiter.Handler(dealsHandler)))
//
// The Handler sets the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-09 on every response and answers
// 429 application/problem+json with Retry-After when the bucket is empty;
// a request without a principal gets 401. Refusals are counted by the
// dealix.tenancy.rate_limited metric, by policy (never by tenant), through
// the global OpenTelemetry meter provider.
//
// The buckets live in one process: with several instances behind a load
// balancer each enforces its own share, so divide the rates accordingly.
package ratelimit
