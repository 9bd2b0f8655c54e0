package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The CORS answer of the API. Preflights are answered here and never reach
// authentication: a browser sends them without credentials.
var (
	corsMethods = "GET, POST, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, Idempotency-Key, If-Match, X-API-Key, X-Correlation-ID"
	corsExpose  = "ETag, Location, RateLimit, RateLimit-Policy, Retry-After, X-Correlation-ID, Idempotent-Replayed"
	corsMaxAge  = strconv.Itoa(600)
)

// checkOrigin accepts an origin as browsers send it: scheme://host[:port],
// nothing else.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || o != strings.ToLower(o) {
		return fmt.Errorf("want a lower-case origin such as https://app.example.com, got %q", o)
	}
	return nil
}

// cors is the allowlist middleware. A request from an allowed origin gets
// Access-Control-Allow-Origin naming it (never "*", and no credentials
// mode: the API authenticates with headers, not cookies). A request from
// any other origin gets no CORS headers, so the browser keeps the response
// from the page. Every answer says Vary: Origin, so a cache never serves
// one origin's answer to another.
func cors(origins []string) func(http.Handler) http.Handler {
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		if o != "none" {
			allowed[o] = true
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			h := w.Header()
			// Every answer varies by Origin, also one to a request without
			// it, or a shared cache could hand it to a browser's request.
			h.Add("Vary", "Origin")
			if origin == "" && !preflight {
				next.ServeHTTP(w, r)
				return
			}
			ok := allowed[origin]
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				if ok {
					h.Set("Access-Control-Allow-Origin", origin)
					h.Set("Access-Control-Allow-Methods", corsMethods)
					h.Set("Access-Control-Allow-Headers", corsHeaders)
					h.Set("Access-Control-Max-Age", corsMaxAge)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", corsExpose)
			}
			next.ServeHTTP(w, r)
		})
	}
}
