package pgtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// ErrUnstorable is returned by CheckJSON and CheckText for a value
// PostgreSQL would refuse.
var ErrUnstorable = errors.New("value cannot be stored in PostgreSQL")

// CheckJSON returns nil when data is valid JSON that jsonb accepts: valid
// UTF-8 and no NUL character, escaped or not.
func CheckJSON(data []byte) error {
	if !json.Valid(data) {
		return errors.Join(ErrUnstorable, errors.New("not valid JSON"))
	}
	if !utf8.Valid(data) {
		return errors.Join(ErrUnstorable, errors.New("not valid UTF-8"))
	}
	// In valid JSON a NUL can only appear escaped; look closer only then,
	// since `\\u0000` is an escaped backslash followed by text.
	if bytes.Contains(data, []byte(`\u0000`)) && hasEscapedNUL(data) {
		return errors.Join(ErrUnstorable, errors.New("holds a NUL character (\\u0000), which jsonb refuses"))
	}
	return nil
}

// hasEscapedNUL scans valid JSON for a \u0000 escape that is not itself
// the tail of an escaped backslash.
func hasEscapedNUL(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if i+1 < len(data) && data[i+1] == 'u' && bytes.HasPrefix(data[i+2:], []byte("0000")) {
			return true
		}
		i++ // skip the escaped character, a backslash included
	}
	return false
}

// CheckText returns nil when s can be stored in a text column: valid
// UTF-8 without NUL.
func CheckText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.Join(ErrUnstorable, errors.New("holds a NUL character"))
	}
	if !utf8.ValidString(s) {
		return errors.Join(ErrUnstorable, errors.New("is not valid UTF-8"))
	}
	return nil
}

// Clean returns s made storable in a text column and at most limit bytes
// long (limit <= 0: no limit): invalid UTF-8 and NUL become U+FFFD, and a cut
// falls on a rune boundary and ends in "…". Use it for texts the library
// records but does not interpret, such as a handler's error message.
func Clean(s string, limit int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return Truncate(s, limit)
}

// Truncate cuts s to at most limit bytes on a rune boundary, marking the
// cut with "…" (which counts toward limit). limit <= 0 means no limit.
func Truncate(s string, limit int) string {
	if limit <= 0 || len(s) <= limit {
		return s
	}
	const ellipsis = "…"
	cut := limit - len(ellipsis)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
