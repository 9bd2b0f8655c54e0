package pgtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
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
	// In valid JSON a NUL or a lone surrogate can only appear escaped;
	// look closer only then, since `\\u0000` is an escaped backslash
	// followed by text.
	if bytes.Contains(data, []byte(`\u`)) {
		if err := checkEscapes(data); err != nil {
			return errors.Join(ErrUnstorable, err)
		}
	}
	if hugeExponent.Match(data) && hasHugeNumber(data) {
		return errors.Join(ErrUnstorable, errors.New("holds a number beyond PostgreSQL's numeric range"))
	}
	return nil
}

// hugeExponent finds what might be a number whose exponent takes it out
// of PostgreSQL's numeric range; inside a string it is a false alarm that
// hasHugeNumber clears.
var hugeExponent = regexp.MustCompile(`[0-9][eE][+-]?[0-9]{4,}`)

// Limits of PostgreSQL's numeric: 131072 digits before the decimal point
// and 16383 after it.
const (
	numericMaxWeight = 131072
	numericMaxScale  = 16383
)

// hasHugeNumber reports whether a number of valid JSON data is outside
// PostgreSQL's numeric range.
func hasHugeNumber(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n, ok := tok.(json.Number); ok && !fitsNumeric(string(n)) {
			return true
		}
	}
}

// fitsNumeric mirrors numeric's input check: the scale left after the
// exponent is applied, and the position of the first significant digit.
func fitsNumeric(n string) bool {
	mantissa, expText, hasExp := strings.Cut(strings.ToLower(strings.TrimPrefix(n, "-")), "e")
	exp := 0
	if hasExp {
		var err error
		if exp, err = strconv.Atoi(expText); err != nil || exp > 1<<30 || exp < -(1<<30) {
			return false
		}
	}
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	if len(fracPart)-exp > numericMaxScale {
		return false
	}
	digits := intPart + fracPart
	first := strings.IndexFunc(digits, func(r rune) bool { return r != '0' })
	if first < 0 {
		return true // zero: only its scale matters
	}
	return len(intPart)-1-first+exp < numericMaxWeight
}

// checkEscapes scans valid JSON for the \u escapes jsonb refuses: NUL
// and a surrogate that is not half of a pair. An escape counts only when
// its backslash is not itself escaped.
func checkEscapes(data []byte) error {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if i+5 < len(data) && data[i+1] == 'u' {
			r, ok := hex4(data[i+2 : i+6])
			switch {
			case !ok:
			case r == 0:
				return errors.New("holds a NUL character (\\u0000), which jsonb refuses")
			case utf16.IsSurrogate(r):
				low, ok := rune(0), false
				if i+11 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
					low, ok = hex4(data[i+8 : i+12])
				}
				if r >= 0xDC00 || !ok || low < 0xDC00 || low > 0xDFFF {
					return errors.New("holds a lone UTF-16 surrogate escape, which jsonb refuses")
				}
				i += 6 // the low half is consumed with its high half
			}
		}
		i++ // skip the escaped character, a backslash included
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	v, err := strconv.ParseUint(string(b), 16, 32)
	return rune(v), err == nil
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
