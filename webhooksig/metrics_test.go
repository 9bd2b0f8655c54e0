package webhooksig_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/internal/metrictest"
	"github.com/dealix/platform/webhooksig"
)

// Not parallel: it installs the global meter provider. Counts are compared
// before and after, as parallel tests may record rejections too.
func TestRejectionsAreCountedByReason(t *testing.T) {
	reader := metrictest.InstallGlobal()
	calls := make(chan received, 4)
	srv := serve(t, newGitHub(t, "s3cret"), webhooksig.Config{}, recorder(calls))
	body := []byte(`{"action":"opened"}`)
	github := attribute.String("verifier", "github")
	count := func(reason string) int64 {
		return reader.Sum(t, "dealix.webhooksig.rejections", github, attribute.String("reason", reason))
	}
	badBefore, missingBefore := count("bad_signature"), count("missing_header")

	resp, _ := post(t, srv.URL, body, http.Header{"X-Hub-Signature-256": {webhooksig.SignGitHub("wrong", body)}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, srv.URL, body, http.Header{"X-Hub-Signature-256": {webhooksig.SignGitHub("wrong", body)}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, srv.URL, body, http.Header{})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = post(t, srv.URL, body, http.Header{"X-Hub-Signature-256": {webhooksig.SignGitHub("s3cret", body)}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	require.Equal(t, badBefore+2, count("bad_signature"))
	require.Equal(t, missingBefore+1, count("missing_header"))
}
