package problem

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// ContentType is the media type of a problem details body (RFC 9457 section 6.1).
const ContentType = "application/problem+json"

// DefaultType is the problem type used when Details.Type is empty: the
// problem has no meaning beyond its HTTP status (RFC 9457 section 4.2.1).
const DefaultType = "about:blank"

var (
	// ErrInvalidStatus is returned for a status outside 400–599: a problem
	// details body only ever describes a client or server error.
	ErrInvalidStatus = errors.New("problem: status must be a 4xx or 5xx code")
	// ErrReservedMember is returned when an extension member is empty or
	// would overwrite one of the standard members.
	ErrReservedMember = errors.New("problem: extension member name is empty or reserved")
)

// reserved lists the standard members an extension may not replace.
var reserved = []string{"type", "title", "status", "detail", "instance"}

// Details is one problem details object.
type Details struct {
	// Type is a URI reference naming the problem type. Empty means
	// DefaultType ("about:blank").
	Type string
	// Title is a short, human-readable summary of the problem type. Empty
	// means the standard text of Status (for example "Unauthorized").
	Title string
	// Status is the HTTP status code; it must be within 400–599.
	Status int
	// Detail explains this occurrence of the problem. Optional. It must
	// never carry secrets: it is shown to the client.
	Detail string
	// Instance is a URI reference naming this occurrence. Optional.
	Instance string
	// Extensions are extra members written beside the standard ones, for
	// example "retry_after" or "errors". Optional.
	Extensions map[string]any
}

// Validate reports whether d can be written: a 4xx or 5xx status and no
// extension member that collides with a standard one.
func (d Details) Validate() error {
	if d.Status < 400 || d.Status > 599 {
		return fmt.Errorf("%w: got %d", ErrInvalidStatus, d.Status)
	}
	for name := range d.Extensions {
		if name == "" || slices.Contains(reserved, name) {
			return fmt.Errorf("%w: %q", ErrReservedMember, name)
		}
	}
	return nil
}

// MarshalJSON encodes d as a flat JSON object: the standard members first,
// in the order of RFC 9457, then the extensions sorted by name so the
// output is stable.
func (d Details) MarshalJSON() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	writeMember(&buf, "type", cmp.Or(d.Type, DefaultType), true)
	writeMember(&buf, "title", cmp.Or(d.Title, http.StatusText(d.Status)), false)
	buf.WriteString(`,"status":`)
	buf.WriteString(strconv.Itoa(d.Status))
	if d.Detail != "" {
		writeMember(&buf, "detail", d.Detail, false)
	}
	if d.Instance != "" {
		writeMember(&buf, "instance", d.Instance, false)
	}
	if err := writeExtensions(&buf, d.Extensions); err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Error makes Details usable as an error value, so a handler can return it
// and an adapter can write it.
func (d Details) Error() string {
	if d.Detail != "" {
		return fmt.Sprintf("%d %s: %s", d.Status, cmp.Or(d.Title, http.StatusText(d.Status)), d.Detail)
	}
	return fmt.Sprintf("%d %s", d.Status, cmp.Or(d.Title, http.StatusText(d.Status)))
}

// Write sends d as the response: Content-Type application/problem+json,
// the status code, and the encoded body. Headers the caller set before
// (Retry-After, WWW-Authenticate, …) are kept. When d is invalid nothing is
// written and the error is returned.
func Write(w http.ResponseWriter, d Details) error {
	body, err := d.MarshalJSON()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("ETag")
	h.Del("Last-Modified")
	w.WriteHeader(d.Status)
	_, err = w.Write(body)
	return err
}

// Status writes a problem with only a status and a detail, the common case
// for middleware. A status outside 400–599 is a mistake of the calling code,
// not of the client; it is reported as a 500 problem rather than a panic.
func Status(w http.ResponseWriter, status int, detail string) {
	if err := Write(w, Details{Status: status, Detail: detail}); errors.Is(err, ErrInvalidStatus) {
		_ = Write(w, Details{Status: http.StatusInternalServerError})
	}
}

func writeMember(buf *bytes.Buffer, name, value string, first bool) {
	if !first {
		buf.WriteByte(',')
	}
	nameJSON, _ := json.Marshal(name)
	valueJSON, _ := json.Marshal(value) // marshalling a string cannot fail
	buf.Write(nameJSON)
	buf.WriteByte(':')
	buf.Write(valueJSON)
}

func writeExtensions(buf *bytes.Buffer, ext map[string]any) error {
	names := make([]string, 0, len(ext))
	for name := range ext {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value, err := json.Marshal(ext[name])
		if err != nil {
			return fmt.Errorf("problem: extension %q: %w", name, err)
		}
		nameJSON, _ := json.Marshal(name)
		buf.WriteByte(',')
		buf.Write(nameJSON)
		buf.WriteByte(':')
		buf.Write(value)
	}
	return nil
}
