package httpx_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// A problem the writer refuses (a reserved member) is answered as the
// server's bug, a 500 problem, never as an empty 200.
func TestFailWithAnUnwritableProblemAnswers500(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := httpx.Errorf(http.StatusConflict, "closed")
		err.Extensions = map[string]any{"status": "won"}
		httpx.Fail(w, r, slog.New(slog.NewTextHandler(io.Discard, nil)), err)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q, want a 500 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
