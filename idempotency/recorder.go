package idempotency

import (
	"bytes"
	"net/http"
	"strconv"
)

// recorder buffers a handler's whole response, so it can be stored (and,
// in transactional mode, committed) before the client sees any of it: a
// client that received a response always finds the same one on a retry.
type recorder struct {
	header      http.Header
	status      int
	body        bytes.Buffer
	wroteHeader bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (rec *recorder) Header() http.Header { return rec.header }

// WriteHeader records the first final status; informational (1xx) ones
// cannot be buffered and are dropped.
func (rec *recorder) WriteHeader(status int) {
	if rec.wroteHeader || status < 200 || status > 999 {
		return
	}
	rec.status = status
	rec.wroteHeader = true
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.body.Write(p)
}

// wrote reports whether the handler produced a response at all.
func (rec *recorder) wrote() bool { return rec.wroteHeader }

// statusCode is the response's status, 200 when the handler wrote none (as
// net/http does).
func (rec *recorder) statusCode() int {
	if !rec.wroteHeader {
		return http.StatusOK
	}
	return rec.status
}

// response is what is stored: the status, the headers named in keep and the
// body, unless it is larger than maxBody.
func (rec *recorder) response(keep []string, maxBody int) Response {
	resp := Response{Status: rec.statusCode(), Header: http.Header{}}
	for _, name := range keep {
		if values := rec.header.Values(name); len(values) > 0 {
			resp.Header[name] = append([]string(nil), values...)
		}
	}
	if rec.body.Len() > maxBody {
		resp.BodyOmitted = true
		resp.Body = []byte{}
	} else {
		resp.Body = bytes.Clone(rec.body.Bytes())
	}
	return resp
}

// flush sends the buffered response to w with every header the handler set.
func (rec *recorder) flush(w http.ResponseWriter) {
	dst := w.Header()
	for name, values := range rec.header {
		dst[name] = values
	}
	setContentLength(dst, rec.statusCode(), rec.body.Len())
	w.WriteHeader(rec.statusCode())
	_, _ = w.Write(rec.body.Bytes())
}

// writeResponse sends a stored response to w as a replay.
func writeResponse(w http.ResponseWriter, resp *Response) {
	dst := w.Header()
	for name, values := range resp.Header {
		dst[name] = values
	}
	dst.Set(ReplayedHeader, "true")
	setContentLength(dst, resp.Status, len(resp.Body))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// setContentLength sets Content-Length for statuses that carry a body; 204
// and 304 responses must not have one.
func setContentLength(h http.Header, status, n int) {
	if status == http.StatusNoContent || status == http.StatusNotModified {
		h.Del("Content-Length")
		return
	}
	h.Set("Content-Length", strconv.Itoa(n))
}
