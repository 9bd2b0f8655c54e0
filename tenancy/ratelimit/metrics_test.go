package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/internal/metrictest"
	"github.com/dealix/platform/tenancy/ratelimit"
)

// Not parallel: it installs the global meter provider. Counts are compared
// before and after, as parallel tests may be rate limited too.
func TestRateLimitRejectionsAreCounted(t *testing.T) {
	reader := metrictest.InstallGlobal()
	limiter, err := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Rate{Requests: 1, Window: time.Hour},
		Now:     newFakeClock().Now,
	})
	require.NoError(t, err)
	srv := limitedServer(t, limiter)
	policy := attribute.String("policy", "default")
	before := reader.Sum(t, "dealix.tenancy.rate_limited", policy)

	require.Equal(t, http.StatusOK, limitedCall(t, srv, tenantA, nil).status)
	require.Equal(t, http.StatusTooManyRequests, limitedCall(t, srv, tenantA, nil).status)
	require.Equal(t, http.StatusTooManyRequests, limitedCall(t, srv, tenantA, nil).status)

	require.Equal(t, before+2, reader.Sum(t, "dealix.tenancy.rate_limited", policy))
}
