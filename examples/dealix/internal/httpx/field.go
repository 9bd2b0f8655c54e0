package httpx

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/dealix/platform/internal/pgtext"
)

// Invalid is a 400 problem about one field of the request's body, named
// in the problem's errors member.
func Invalid(field, why string) error {
	return &Error{
		Status:     http.StatusBadRequest,
		Detail:     field + " " + why,
		Extensions: map[string]any{"errors": []map[string]string{{"field": field, "detail": why}}},
	}
}

// CheckText refuses a text field PostgreSQL could not store or longer than
// limit characters (limit <= 0: no limit).
func CheckText(field, v string, limit int) error {
	if pgtext.CheckText(v) != nil {
		return Invalid(field, "contains a character that cannot be stored (NUL)")
	}
	if limit > 0 && utf8.RuneCountInString(v) > limit {
		return Invalid(field, "is longer than "+strconv.Itoa(limit)+" characters")
	}
	return nil
}
