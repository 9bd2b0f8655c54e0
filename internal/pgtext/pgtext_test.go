package pgtext_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/pgtext"
)

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		json string
		ok   bool
	}{
		{"object", `{"a":"b"}`, true},
		{"escaped backslash before u0000 text", `{"a":"\\u0000"}`, true},
		{"NUL escape", `{"a":"x\u0000y"}`, false},
		{"NUL escape in a key", `{"\u0000":1}`, false},
		{"NUL after escaped backslash pair", `["\\\u0000"]`, false},
		{"not JSON", `{"a":`, false},
		{"invalid UTF-8", "\"\xff\"", false},
		{"surrogate pair", `"\ud83d\ude00"`, true},
		{"lone high surrogate", `"\ud800"`, false},
		{"lone low surrogate", `"\udc00x"`, false},
		{"high surrogate then text", `"\ud800\u0041"`, false},
		{"escaped backslash then ud800 text", `"\\ud800"`, true},
		{"huge exponent", `[1e1000000]`, false},
		{"large but fine exponent", `[1e300]`, true},
		{"exponent-like text in a string", `"1e1000000"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pgtext.CheckJSON([]byte(tc.json))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, pgtext.ErrUnstorable)
		})
	}
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	require.NoError(t, pgtext.CheckText("plain ✓"))
	require.ErrorIs(t, pgtext.CheckText("a\x00b"), pgtext.ErrUnstorable)
	require.ErrorIs(t, pgtext.CheckText("a\xffb"), pgtext.ErrUnstorable)
}

func TestCleanMakesTextStorable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a\uFFFDb", pgtext.Clean("a\x00b", 0))
	require.Equal(t, "a\uFFFDb", pgtext.Clean("a\xffb", 0))
	require.Equal(t, "ok", pgtext.Clean("ok", 10))
}

func TestTruncateCutsOnARuneBoundary(t *testing.T) {
	t.Parallel()
	got := pgtext.Truncate(strings.Repeat("é", 10), 8) // é is two bytes
	require.LessOrEqual(t, len(got), 8)
	require.True(t, utf8.ValidString(got))
	require.True(t, strings.HasSuffix(got, "…"))
	require.Equal(t, "short", pgtext.Truncate("short", 8))
	require.Equal(t, "unlimited", pgtext.Truncate("unlimited", 0))
}

// FuzzCheckJSON checks CheckJSON against a decoder: it must refuse exactly
// the valid documents holding a NUL, and never panic.
func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `"\u0000"`, `"\\u0000"`, `["a\\\u0000"]`, `{"k":"v"}`, "\"\xff\""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := pgtext.CheckJSON(data)
		if !json.Valid(data) || !utf8.Valid(data) {
			require.Error(t, err)
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // 1E1000 is valid JSON but no float64
		require.NoError(t, dec.Decode(&v))
		if holdsNUL(v) {
			require.True(t, errors.Is(err, pgtext.ErrUnstorable), "a NUL must be refused: %q", data)
		} else if err != nil {
			// Refusals beyond NUL are lone surrogates and huge numbers,
			// which TestCheckJSONAgreesWithPostgreSQL holds against the
			// real jsonb parser.
			require.Regexp(t, `surrogate|numeric`, err.Error(), "%q", data)
		}
	})
}

// FuzzClean checks that Clean always yields storable text within its limit.
func FuzzClean(f *testing.F) {
	f.Add("a\x00b\xff", 5)
	f.Add("ééé", 4)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = limit % 1000
		got := pgtext.Clean(s, limit)
		require.NoError(t, pgtext.CheckText(got))
		if limit > 0 {
			require.LessOrEqual(t, len(got), max(limit, len("…")))
		}
	})
}

func holdsNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case []any:
		for _, e := range v {
			if holdsNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 || holdsNUL(e) {
				return true
			}
		}
	}
	return false
}

// TestCheckJSONAgreesWithPostgreSQL holds CheckJSON's verdicts against
// the real jsonb parser.
func TestCheckJSONAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for _, doc := range []string{
		`{"a":"b"}`, `"\\u0000"`, `"\u0000"`, `["a\\\u0000"]`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00"`,
		`"\ud800\u0041"`, `"\\ud800"`, `[1e1000000]`, `[1e300]`, `[-1e-300]`, `"1e1000000"`, `{"k":1E+130001}`, `[1e130000]`,
		`[1e131071]`, `[1e131072]`, `[1e-16383]`, `[1e-16384]`, `[0e1000000]`, `[0.001e131074]`, `[0.001e131075]`, `[1.000e-16381]`, `[1.000e-16380]`, `[0e-20000]`,
	} {
		var pgErr error
		_, pgErr = db.Admin.Exec(context.Background(), "SELECT $1::text::jsonb", doc)
		got := pgtext.CheckJSON([]byte(doc))
		require.Equal(t, pgErr == nil, got == nil, "%s: PostgreSQL says %v, CheckJSON says %v", doc, pgErr, got)
	}
}
