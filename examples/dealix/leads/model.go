package leads

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Statuses a lead moves through.
var Statuses = []string{"new", "contacted", "qualified", "won", "lost"}

// Lead is a lead as the API shows it.
type Lead struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     *string   `json:"email"`
	Company   *string   `json:"company"`
	Owner     *string   `json:"owner"`
	Source    *string   `json:"source"`
	Notes     *string   `json:"notes"`
	Status    string    `json:"status"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ETag is the lead's entity tag: it changes with every update.
func (l Lead) ETag() string { return `"v` + strconv.Itoa(l.Version) + `"` }

// field limits, in characters; the table's CHECK constraints say the same.
var limits = map[string]int{
	"name": 200, "email": 320, "company": 200, "owner": 200, "source": 100, "notes": 5000,
}

// createInput is the body of POST /api/v1/leads.
type createInput struct {
	Name    string  `json:"name"`
	Email   *string `json:"email"`
	Company *string `json:"company"`
	Owner   *string `json:"owner"`
	Source  *string `json:"source"`
	Notes   *string `json:"notes"`
	Status  *string `json:"status"`
}

func (in *createInput) validate() error {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		return httpx.Invalid("name", "is required")
	}
	if err := httpx.CheckText("name", in.Name, limits["name"]); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"email", in.Email}, {"company", in.Company}, {"owner", in.Owner}, {"source", in.Source}, {"notes", in.Notes}} {
		if f.value != nil {
			if err := httpx.CheckText(f.name, *f.value, limits[f.name]); err != nil {
				return err
			}
		}
	}
	if in.Email != nil {
		if err := checkEmail(*in.Email); err != nil {
			return err
		}
	}
	if in.Status == nil {
		s := "new"
		in.Status = &s
	}
	return checkStatus(*in.Status)
}

// optional is a JSON member of a PATCH body that may be absent (leave the
// column), null (clear it) or a string (set it).
type optional struct {
	Set   bool
	Null  bool
	Value string
}

func (o *optional) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(b, []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// patchInput is the body of PATCH /api/v1/leads/{id}: a JSON merge patch
// (RFC 7396) over the lead's editable members.
type patchInput struct {
	Name    optional `json:"name"`
	Email   optional `json:"email"`
	Company optional `json:"company"`
	Owner   optional `json:"owner"`
	Source  optional `json:"source"`
	Notes   optional `json:"notes"`
	Status  optional `json:"status"`
}

// changes validates the patch and returns the columns it sets, in a fixed
// order, with nil meaning NULL.
func (p *patchInput) changes() ([]string, []any, error) {
	var cols []string
	var vals []any
	add := func(col string, o optional, nullable bool) error {
		if !o.Set {
			return nil
		}
		if o.Null {
			if !nullable {
				return httpx.Invalid(col, "cannot be null")
			}
			cols, vals = append(cols, col), append(vals, nil)
			return nil
		}
		v := o.Value
		if col == "name" {
			v = strings.TrimSpace(v)
			if v == "" {
				return httpx.Invalid("name", "must not be empty")
			}
		}
		if err := httpx.CheckText(col, v, limits[col]); err != nil {
			return err
		}
		switch col {
		case "email":
			if err := checkEmail(v); err != nil {
				return err
			}
		case "status":
			if err := checkStatus(v); err != nil {
				return err
			}
		}
		cols, vals = append(cols, col), append(vals, v)
		return nil
	}
	for _, f := range []struct {
		col      string
		o        optional
		nullable bool
	}{
		{"name", p.Name, false}, {"email", p.Email, true}, {"company", p.Company, true},
		{"owner", p.Owner, true}, {"source", p.Source, true}, {"notes", p.Notes, true}, {"status", p.Status, false},
	} {
		if err := add(f.col, f.o, f.nullable); err != nil {
			return nil, nil, err
		}
	}
	if len(cols) == 0 {
		return nil, nil, httpx.Errorf(http.StatusBadRequest, "the patch changes nothing")
	}
	return cols, vals, nil
}

func checkEmail(v string) error {
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v {
		return httpx.Invalid("email", "is not an email address")
	}
	return nil
}

func checkStatus(v string) error {
	if !slices.Contains(Statuses, v) {
		return httpx.Invalid("status", "must be one of "+strings.Join(Statuses, ", "))
	}
	return nil
}
