// Package webhooksig verifies inbound webhooks: HubSpot (v3, and v1/v2 on
// request), Calendly, Moyasar, Stripe, GitHub, Slack and Standard Webhooks,
// with several active secrets per verifier for rotation, an injectable
// clock, configurable timestamp tolerance and constant-time comparison
// everywhere, plus a PostgreSQL replay guard.
//
// # Shape
//
// As with net/http's CrossOriginProtection, the check is split from its
// HTTP adapter. A Verifier is the pure check: Verify(*Message) looks only at
// what the scheme signs (headers, the raw body, and the method and URL for
// HubSpot) and returns a Delivery (verifier name, delivery id, signed
// timestamp) or an *Error wrapping one sentinel per failed check:
//
//	ErrMissingHeader, ErrMalformedHeader, ErrMalformedBody  -> 400
//	ErrBadSignature, ErrStaleTimestamp, ErrUnknownKey       -> 401
//	ErrBodyTooLarge                                         -> 413
//	ErrReplayed, ErrInProgress                              -> 409
//
// An error's text names the verifier, the field and the check, never a
// secret, a received signature or an expected one. StatusCode maps an error
// to its status.
//
// Middleware is the adapter: it reads the body up to Config.MaxBodyBytes,
// verifies, answers a failure with an RFC 9457 application/problem+json
// body, and hands a verified request on with its body intact and its
// Delivery in the context (DeliveryFromContext).
//
//	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{
//		Secrets: []string{os.Getenv("STRIPE_WHSEC"), os.Getenv("STRIPE_WHSEC_OLD")},
//	})
//	...
//	mw, err := webhooksig.New(v, webhooksig.Config{Replay: store})
//	...
//	mux.Handle("POST /hooks/stripe", mw.Handler(stripeEvents))
//
// # Schemes
//
//   - GitHub: X-Hub-Signature-256 "sha256=<hex HMAC(body)>". No timestamp;
//     the delivery id is the signature's digest, since GitHub does not sign
//     X-GitHub-Delivery (passed on as Delivery.SenderID).
//   - Stripe: Stripe-Signature "t=<unix>,v1=<hex>[,v1=…]" over "<t>.<body>",
//     tolerance 300 s; the delivery id is the event's "id".
//   - Standard Webhooks: webhook-id, webhook-timestamp and a space-separated
//     "v1,<base64>" list over "<id>.<timestamp>.<body>", "whsec_" base64
//     secrets, tolerance 5 minutes; the delivery id is webhook-id.
//   - Slack: X-Slack-Signature "v0=<hex>" over "v0:<ts>:<body>" with
//     X-Slack-Request-Timestamp, tolerance 5 minutes.
//   - Calendly: Calendly-Webhook-Signature "t=<unix>,v1=<hex>" over
//     "<t>.<body>", tolerance 3 minutes.
//   - Moyasar: no signature; the body's "secret_token" must equal a
//     configured token (compared through SHA-256 digests in constant time);
//     the delivery id is the event's "id", or the body's digest without one.
//   - HubSpot v3: X-HubSpot-Signature-v3, base64 HMAC over method + URI +
//     body + X-HubSpot-Request-Timestamp (milliseconds), with the URI's
//     documented percent-encodings decoded first (HubSpotDecodeURI);
//     tolerance 5 minutes. With HubSpotConfig.Legacy, v1 (hex SHA-256 of
//     secret + body) and v2 (secret + method + URI + body) too.
//
// Timestamps are rejected when older or newer than the tolerance. Without a
// Config.Now, the clock is the system's, read by a timer every 100 ms while
// the verifier is used rather than on every delivery (the timer stops when
// the verifier is idle). Standard Webhooks deliveries are verified without
// an allocation; Stripe's take one, the event id copied out of the body.
// Schemes without a delivery id use a digest of the verified signature,
// which is unique per timestamp and body. Every scheme has a signing helper
// (SignGitHub, SignStripe, SignStandard, SignSlack, SignCalendly,
// SignMoyasar, SignHubSpotV3, SignHubSpotV1, SignHubSpotV2) for tests and
// for sending webhooks.
//
// HubSpot signs the URL it called. Behind a proxy the server sees another
// one, so Config.URL rebuilds it; the default is "https://" + Host +
// request URI.
//
// # Replay guard
//
// A timestamp bounds how long a captured request stays valid; the replay
// guard closes that window and keeps the sender's at-least-once delivery
// from running a handler twice, without turning it into at-most-once.
// With Config.Replay set, the middleware claims (verifier, delivery id) in
// platform.webhooksig_deliveries before calling the handler. A delivery is
// in one of two states:
//
//   - in progress, held under a lease (ReplayStoreConfig.Lease, default
//     30 s) that the middleware renews while the handler runs. A duplicate
//     that arrives meanwhile gets 409 Conflict with Retry-After (the time
//     the lease still runs): the first attempt may yet fail.
//   - completed, once the handler returned normally with a 2xx status. A
//     later delivery of the same id within Config.ReplayTTL is a replay:
//     409 Conflict (RejectReplay) or 200 OK without calling the handler
//     (AcknowledgeReplay).
//
// Every other outcome gives the delivery back, so the sender's retry
// reaches the handler again: a 4xx or 5xx answer, a panic, or a request
// whose context was cancelled (the sender hung up) before the handler
// wrote anything. A process killed mid-handler cannot give it back; its
// lease runs out and the next retry takes the delivery over. A claim is one
// INSERT … ON CONFLICT, so of two concurrent deliveries of one id exactly
// one runs. Leases and expiries are computed by the database (now() in the
// statement), so servers whose clocks differ agree on them.
//
// The replay key is always covered by what the scheme authenticates, so a
// captured delivery cannot be resent under a fresh key: the signed
// webhook-id (Standard Webhooks), the event id in the signed body (Stripe),
// and otherwise the digest of the verified signature. GitHub does not sign
// X-GitHub-Delivery, so its deliveries are keyed by the signature (its
// body); the header is Delivery.SenderID. Moyasar signs nothing: its token
// travels in the body, so whoever saw one delivery can write others, and
// the guard there only stops the sender's own repeats.
//
// The middleware's claim is a record of its own, committed before the
// handler's writes. A handler that commits its writes and then dies before
// the claim is completed will see the delivery again after the lease. Where
// that matters, leave Config.Replay unset and claim in the handler's own
// transaction with ReplayStore.ClaimTx: the delivery is then recorded as
// completed in that transaction, and commits or rolls back with the
// handler's writes; a concurrent duplicate waits for that transaction to
// end (see the ReplayStore.ClaimTx example):
//
//	d, _ := webhooksig.DeliveryFromContext(r.Context())
//	tx, err := pool.Begin(ctx)
//	...
//	c, err := store.ClaimTx(ctx, tx, d.Verifier, d.ID, 72*time.Hour)
//	switch c.Status {
//	case webhooksig.ClaimCompleted:  // already processed: acknowledge
//	case webhooksig.ClaimInProgress: // another request holds it: 409, Retry-After
//	}
//	... the handler's writes in tx ...
//	err = tx.Commit(ctx)
//
// Run a Sweeper (NewSweeper, then Run in a goroutine, or SweepOnce from a
// scheduler) to delete expired deliveries; expired rows are harmless, as a
// claim takes them over, so sweeping only keeps the table small.
//
// # Why the replay table is not tenant-scoped
//
// Unlike the library's other tables, platform.webhooksig_deliveries has no
// tenant_id and no row-level security, on purpose: a webhook is verified
// and claimed before any tenant is known. The caller is the provider, not a
// tenant's user; the tenant, if any, is found in the verified body, after
// the guard has run, and one delivery (a Slack or Stripe platform event)
// may concern several tenants or none. The table's key is (verifier,
// delivery id), and ids are unique only per sender (two Standard Webhooks
// senders may both send "msg_1"): give each sender's endpoint a verifier
// Name of its own, and where tenants bring their own provider accounts,
// one per tenant (for example "stripe:" + account id), so their deliveries
// never meet. Where the route knows the tenant, that name is how the guard
// is scoped to it. The table holds no tenant data,
// only verifier names, ids (or digests) and times. The serving role needs
// SELECT, INSERT, UPDATE and DELETE on it; Migrate creates it in schema
// platform.
package webhooksig
