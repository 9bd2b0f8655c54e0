package ratelimit_test

import (
	"fmt"
	"time"

	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

func ExampleLimiter_Allow() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	limiter, err := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Rate{Requests: 2, Window: 10 * time.Second},
		Now:     func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	caller := tenancy.Principal{TenantID: "6f1c1a8e-0000-4000-8000-00000000000a"}
	for range 3 {
		d := limiter.Allow(caller)
		fmt.Println(d.Allowed, d.Remaining, d.Reset, d.RetryAfter)
	}
	// Output:
	// true 1 5s 0s
	// true 0 10s 0s
	// false 0 10s 5s
}
