package idempotency

import (
	"fmt"
	"strings"
)

// HeaderName is the request header that carries the key.
const HeaderName = "Idempotency-Key"

// ReplayedHeader is set to "true" on every replayed response.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLength is the longest key accepted, in characters.
const MaxKeyLength = 255

// ParseKey parses the value of an Idempotency-Key header and returns the
// key. Two forms are accepted, with optional surrounding spaces or tabs:
//
//   - the form of the IETF draft "The Idempotency-Key HTTP Header Field": a
//     structured-field string (RFC 8941 section 3.3.3), a quoted string in
//     which only \" and \\ are escapes, for example "8e03978e-40d5";
//   - a bare token of visible ASCII characters (0x21–0x7E), as most APIs
//     send it, for example 8e03978e-40d5.
//
// The key (the string's content, unescaped) must hold 1 to MaxKeyLength
// characters, all printable ASCII; inside the quoted form a space is a
// character of the key. Structured-field parameters after the string are
// not accepted. Any other input returns an error wrapping ErrInvalidKey.
func ParseKey(value string) (string, error) {
	v := strings.Trim(value, " \t")
	if v == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if v[0] == '"' {
		return parseQuoted(v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", fmt.Errorf("%w: character %q at %d is not visible ASCII", ErrInvalidKey, v[i], i)
		}
	}
	if err := checkLength(len(v)); err != nil {
		return "", err
	}
	return v, nil
}

// parseQuoted parses an sf-string that must span all of v.
func parseQuoted(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", fmt.Errorf("%w: bad escape in quoted key", ErrInvalidKey)
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", fmt.Errorf("%w: characters after the closing quote", ErrInvalidKey)
			}
			if err := checkLength(b.Len()); err != nil {
				return "", err
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: character %q at %d is not printable ASCII", ErrInvalidKey, c, i)
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%w: missing closing quote", ErrInvalidKey)
}

func checkLength(n int) error {
	if n < 1 || n > MaxKeyLength {
		return fmt.Errorf("%w: length %d is not within 1–%d", ErrInvalidKey, n, MaxKeyLength)
	}
	return nil
}

// ValidKey reports whether key can be stored: 1 to MaxKeyLength printable
// ASCII characters. It returns nil or an error wrapping ErrInvalidKey.
func ValidKey(key string) error {
	if err := checkLength(len(key)); err != nil {
		return err
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("%w: character %q at %d is not printable ASCII", ErrInvalidKey, key[i], i)
		}
	}
	return nil
}
