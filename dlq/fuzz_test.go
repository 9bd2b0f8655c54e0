package dlq_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/dealix/platform/dlq"
)

// FuzzDecodePayload feeds arbitrary payloads to Decode: it never panics,
// and it either decodes or fails with ErrPayload.
func FuzzDecodePayload(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://example.test/h","event":"deal.won"}`, `{}`, `null`, `[]`, `"text"`, `{"url":1}`,
		`{"url":"a","extra":true}`, `{"url":"a"} {"url":"b"}`, `{"url":`, ``, "\x00", `{"url":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		job := &dlq.Job{ID: 1, Payload: payload}
		w, err := dlq.Decode[webhook](job)
		if err != nil {
			if !errors.Is(err, dlq.ErrPayload) {
				t.Fatalf("error %v does not wrap ErrPayload", err)
			}
			return
		}
		// What decoded re-encodes to an object with only known fields.
		out, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dlq.Decode[webhook](&dlq.Job{Payload: out}); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", out, err)
		}
	})
}

// FuzzDecodeAction feeds arbitrary bodies to the handler's action parser:
// it never panics, and whatever it accepts is a well-formed action.
func FuzzDecodeAction(f *testing.F) {
	for _, seed := range []string{
		`{"job_id":42}`, `{"action":"redrive","filter":{"queue":"webhooks"}}`, `{"action":"discard","job_id":1}`,
		`{"action":"purge","filter":{"kind":"email","error_contains":"410"}}`, `{"filter":{"tenant":"acme"}}`,
		`{"job_id":-1}`, `{"job_id":1,"filter":{}}`, `{}`, `[]`, `null`, `{"job_id":1e400}`,
		`{"filter":{"dead_before":"2026-11-23T09:00:00Z"}}`, `{"job_id":1}{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := dlq.DecodeAction(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, dlq.ErrInvalidAction) {
				t.Fatalf("error %v does not wrap ErrInvalidAction", err)
			}
			return
		}
		switch a.Action {
		case "redrive":
			if (a.JobID > 0) == (a.Filter != nil) {
				t.Fatalf("accepted %+v", a)
			}
		case "discard":
			if a.JobID <= 0 || a.Filter != nil {
				t.Fatalf("accepted %+v", a)
			}
		case "purge":
			if a.Filter == nil || a.JobID != 0 {
				t.Fatalf("accepted %+v", a)
			}
		default:
			t.Fatalf("accepted unknown action %q", a.Action)
		}
	})
}
