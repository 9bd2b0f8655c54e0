package tenancy

import (
	"fmt"
	"net/http"
	"strings"
)

// DefaultMaxHeaderBytes caps the length of the Authorization (and
// X-API-Key) header when a configuration leaves it zero. Real tokens are a
// few kilobytes at most; the cap keeps a megabyte of junk from reaching the
// JSON and signature code.
const DefaultMaxHeaderBytes = 8 << 10

// APIKeyHeader is the header that may carry an API key instead of
// Authorization: Bearer.
const APIKeyHeader = "X-API-Key"

// ParseAuthorization extracts the credentials of an Authorization header
// value of the form "Bearer <token68>" (RFC 6750 section 2.1; the scheme is
// case-insensitive). It returns ErrNoCredentials for an empty value and
// ErrMalformedCredentials for any other scheme, a value longer than
// maxBytes (DefaultMaxHeaderBytes when maxBytes <= 0), or a token with
// characters outside token68. The length is checked before anything else.
func ParseAuthorization(value string, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	if len(value) > maxBytes {
		return "", fmt.Errorf("%w: header is longer than %d bytes", ErrMalformedCredentials, maxBytes)
	}
	if value == "" {
		return "", ErrNoCredentials
	}
	const scheme = "bearer "
	if len(value) <= len(scheme) || !strings.EqualFold(value[:len(scheme)], scheme) {
		return "", fmt.Errorf("%w: not a Bearer credential", ErrMalformedCredentials)
	}
	token := strings.TrimLeft(value[len(scheme):], " ")
	if !isToken68(token) {
		return "", fmt.Errorf("%w: the token has characters outside token68", ErrMalformedCredentials)
	}
	return token, nil
}

// isToken68 reports whether s matches token68 of RFC 9110 section 11.2:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
// It runs over every bearer token, so the loop has no branch per byte: it
// ANDs the table's verdicts, four bytes at a time.
func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	ok := byte(1)
	i := 0
	for ; i+4 <= end; i += 4 {
		ok &= token68Chars[s[i]] & token68Chars[s[i+1]] & token68Chars[s[i+2]] & token68Chars[s[i+3]]
	}
	for ; i < end; i++ {
		ok &= token68Chars[s[i]]
	}
	return ok == 1
}

// token68Chars marks with 1 the bytes token68 allows before its padding.
var token68Chars = func() (table [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		table[c] = 1
	}
	for c := 'A'; c <= 'Z'; c++ {
		table[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		table[c] = 1
	}
	for _, c := range "-._~+/" {
		table[c] = 1
	}
	return table
}()

// singleHeader returns the one value of header name, ErrNoCredentials when
// it is absent and ErrMalformedCredentials when it is repeated (a client
// sending two credentials is not guessed at).
func singleHeader(r *http.Request, name string) (string, error) {
	values, ok := r.Header[name] // name is canonical: skip re-canonicalising it
	if !ok {
		values = r.Header.Values(name)
	}
	switch len(values) {
	case 0:
		return "", ErrNoCredentials
	case 1:
		return values[0], nil
	default:
		return "", fmt.Errorf("%w: %d %s headers", ErrMalformedCredentials, len(values), name)
	}
}

// bearerToken returns the Bearer token of r.
func bearerToken(r *http.Request, maxBytes int) (string, error) {
	value, err := singleHeader(r, "Authorization")
	if err != nil {
		return "", err
	}
	return ParseAuthorization(value, maxBytes)
}
