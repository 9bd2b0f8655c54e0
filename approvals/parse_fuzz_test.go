package approvals

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeDecisionBody(f *testing.F) {
	for _, seed := range []string{
		``, `   `, `{}`, `{"comment":"ok"}`, `{"comment":"looks fine"}` + "\n",
		`{"comment":`, `[]`, `null`, `"x"`, `{"comment":1}`, `{"other":1}`, `{} {}`, `{}x`,
		`{"comment":"\u00e9\ud800"}`, strings.Repeat(" ", 100) + `{"comment":"a"}`,
		`{"comment":"` + strings.Repeat("x", 200) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	const limit = 128
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeDecisionBody(bytes.NewReader(body), limit)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			if got != (decisionBody{}) {
				t.Fatalf("a refused body yields nothing, got %+v", got)
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("accepted %d bytes over the limit of %d", len(body), limit)
		}
		if got.Comment != "" && bytes.TrimSpace(body)[0] != '{' {
			t.Fatalf("a comment from a body that is not an object: %q", body)
		}
		if !utf8.ValidString(got.Comment) {
			t.Fatalf("decoded comment is not UTF-8: %q", got.Comment)
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, seed := range []string{
		"", "status=pending", "status=approved&limit=10", "limit=500", "limit=501", "limit=0",
		"limit=-1", "limit=9999999999999999999", "cursor=42", "cursor=042", "cursor=0", "cursor=x",
		"status=pending&status=expired", "state=pending", "status=%zz", "status=PENDING", "&&", "=",
		"limit=+5", "cursor=9223372036854775807", "cursor=9223372036854775808",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		opts, err := parseListQuery(raw)
		if err != nil {
			if !errors.Is(err, errBadRequest) && !errors.Is(err, ErrInvalidListOptions) {
				t.Fatalf("error %v is neither a bad request nor invalid list options", err)
			}
			return
		}
		if opts.Status != "" && !opts.Status.Valid() {
			t.Fatalf("accepted unknown status %q", opts.Status)
		}
		if opts.Limit < 0 || opts.Limit > MaxPageSize {
			t.Fatalf("accepted limit %d outside [0, %d]", opts.Limit, MaxPageSize)
		}
		limit, before, err := opts.normalize()
		if err != nil || limit < 1 || limit > MaxPageSize || before < 1 {
			t.Fatalf("accepted options that do not normalize: %+v: %d %d %v", opts, limit, before, err)
		}
	})
}
