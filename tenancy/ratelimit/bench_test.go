package ratelimit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

// BenchmarkLimiterAllow measures one decision on a warm bucket.
func BenchmarkLimiterAllow(b *testing.B) {
	limiter, err := ratelimit.New(ratelimit.Config{Default: ratelimit.Rate{Requests: 1 << 30, Window: time.Second}})
	require.NoError(b, err)
	p := tenancy.Principal{TenantID: tenantA}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			limiter.Allow(p)
		}
	})
}
