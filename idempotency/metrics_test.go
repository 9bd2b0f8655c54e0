package idempotency_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/metrictest"
)

// Not parallel: it installs the global meter provider. Counts are compared
// before and after, as parallel tests may record answers too.
func TestReplaysAndMismatchesAreCounted(t *testing.T) {
	reader := metrictest.InstallGlobal()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	c := srv.Client()
	count := func(outcome string) int64 {
		return reader.Sum(t, "dealix.idempotency.answers", attribute.String("outcome", outcome))
	}
	replayedBefore, mismatchBefore := count("replayed"), count("mismatch")

	require.Equal(t, http.StatusCreated, do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "m-1", `{"sku":"x"}`).status)
	require.Equal(t, http.StatusCreated, do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "m-1", `{"sku":"x"}`).status)
	require.Equal(t, http.StatusCreated, do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "m-1", `{"sku":"x"}`).status)
	requireProblem(t, do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "m-1", `{"sku":"y"}`), http.StatusUnprocessableEntity)

	require.Equal(t, replayedBefore+2, count("replayed"))
	require.Equal(t, mismatchBefore+1, count("mismatch"))
}
