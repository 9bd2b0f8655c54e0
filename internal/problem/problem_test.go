package problem_test

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/problem"
)

// serve runs h behind a real HTTP server and returns the response and body.
func serve(t *testing.T, h http.HandlerFunc) (*http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/orders/7")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func TestWriteSendsStatusHeadersAndBody(t *testing.T) {
	t.Parallel()
	resp, body := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		err := problem.Write(w, problem.Details{
			Type:     "https://errors.example/conflict",
			Status:   http.StatusConflict,
			Detail:   "the key is in use by a request still running",
			Instance: r.URL.Path,
			Extensions: map[string]any{
				"retry_after": 3,
				"errors":      []string{"a", "b"},
			},
		})
		require.NoError(t, err)
	})

	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	require.Equal(t, "3", resp.Header.Get("Retry-After"), "headers set before Write are kept")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))

	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, map[string]any{
		"type":        "https://errors.example/conflict",
		"title":       "Conflict",
		"status":      float64(409),
		"detail":      "the key is in use by a request still running",
		"instance":    "/orders/7",
		"retry_after": float64(3),
		"errors":      []any{"a", "b"},
	}, got)
}

func TestDefaultsAndMemberOrder(t *testing.T) {
	t.Parallel()
	body, err := json.Marshal(problem.Details{Status: http.StatusTooManyRequests, Extensions: map[string]any{"z": 1, "a": 2}})
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"about:blank","title":"Too Many Requests","status":429,"a":2,"z":1}`, string(body))
	// Standard members first in RFC order, then extensions sorted: the
	// output is byte-for-byte stable.
	require.Equal(t, `{"type":"about:blank","title":"Too Many Requests","status":429,"a":2,"z":1}`, string(body))
}

func TestRefusesStatusOutsideErrorRange(t *testing.T) {
	t.Parallel()
	for _, status := range []int{0, 100, 200, 204, 302, 399, 600, -1} {
		rec := httptest.NewRecorder()
		err := problem.Write(rec, problem.Details{Status: status})
		require.ErrorIs(t, err, problem.ErrInvalidStatus, "status %d", status)
		require.Empty(t, rec.Body.Bytes(), "nothing is written for status %d", status)
		require.Empty(t, rec.Header().Get("Content-Type"))
	}
	for _, status := range []int{400, 401, 422, 499, 500, 503, 599} {
		require.NoError(t, problem.Details{Status: status}.Validate(), "status %d", status)
	}
}

func TestRefusesReservedExtensionMembers(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"type", "title", "status", "detail", "instance", ""} {
		err := problem.Write(httptest.NewRecorder(), problem.Details{
			Status:     http.StatusBadRequest,
			Extensions: map[string]any{name: "x"},
		})
		require.ErrorIs(t, err, problem.ErrReservedMember, "member %q", name)
	}
}

func TestUnencodableExtensionIsAnError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	err := problem.Write(rec, problem.Details{Status: 400, Extensions: map[string]any{"bad": math.Inf(1)}})
	require.Error(t, err)
	require.Empty(t, rec.Body.Bytes())
}

func TestStatusHelper(t *testing.T) {
	t.Parallel()
	resp, body := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		problem.Status(w, http.StatusUnauthorized, "missing bearer token")
	})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.JSONEq(t, `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"missing bearer token"}`, string(body))

	resp, _ = serve(t, func(w http.ResponseWriter, _ *http.Request) {
		problem.Status(w, http.StatusOK, "not an error")
	})
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "a non-error status is a coding mistake, reported as 500")
}

func TestDetailsIsAnError(t *testing.T) {
	t.Parallel()
	var err error = problem.Details{Status: 404, Detail: "no such order"}
	require.EqualError(t, err, "404 Not Found: no such order")
	var d problem.Details
	require.True(t, errors.As(err, &d))
	require.Equal(t, 404, d.Status)
}
