package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// HeaderCorrelationID is the header the correlation id is read from and
// written to.
const HeaderCorrelationID = "X-Correlation-ID"

// HeaderRequestID is read when HeaderCorrelationID is absent.
const HeaderRequestID = "X-Request-ID"

// MaxCorrelationIDLength bounds an accepted correlation id.
const MaxCorrelationIDLength = 128

type correlationKey struct{}

// WithCorrelationID returns a copy of ctx carrying id. It does not
// validate id; use ValidCorrelationID for ids from outside.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// ValidCorrelationID reports whether id may be accepted from a client and
// echoed: 1 to MaxCorrelationIDLength characters, each a letter, a digit or
// one of . _ : -. Anything else (control characters, spaces, quotes, other
// bytes) could forge log lines or headers, so it is replaced.
func ValidCorrelationID(id string) bool {
	if id == "" || len(id) > MaxCorrelationIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !correlationByte(id[i]) {
			return false
		}
	}
	return true
}

func correlationByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '.', c == '_', c == ':', c == '-':
		return true
	}
	return false
}

// newCorrelationID binds a new id to the trace: the trace id of ctx's span
// when there is one, so a log line, a trace and a support ticket share one
// id; 16 random bytes otherwise.
func newCorrelationID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.TraceID().IsValid() {
		return sc.TraceID().String()
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
