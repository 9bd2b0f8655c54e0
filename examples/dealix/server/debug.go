package server

import (
	"fmt"
	"net/http"
	"time"
)

// maxSlow bounds how long GET /debug/slow waits for the server to stop.
const maxSlow = time.Minute

// slow serves GET /debug/slow (Config.DebugRoutes only): it answers
// "started" at once, then holds the request open until the server begins
// to stop (or a minute passes) and ends with "done". It shows that a
// graceful stop lets a request in flight complete.
func (srv *Server) slow(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintln(w, "started")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	timer := time.NewTimer(maxSlow)
	defer timer.Stop()
	select {
	case <-srv.stopping:
		// Still here after the stop began: prove the drain waits for us.
		time.Sleep(200 * time.Millisecond)
	case <-timer.C:
	case <-r.Context().Done():
		return
	}
	fmt.Fprintln(w, "done")
}
