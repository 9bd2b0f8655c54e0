package httpx

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Cursor is the position of a newest-first list: the last item's
// creation time and id. It travels as opaque base64url JSON.
type Cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

// Encode is the cursor as a client sees it.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor a client sent back; anything else is a 400.
// The id is returned in canonical form: PostgreSQL does not read every
// form uuid.Parse accepts.
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil {
		var id uuid.UUID
		if id, err = uuid.Parse(c.ID); err == nil {
			c.ID = id.String()
		}
	}
	if err != nil || c.CreatedAt.IsZero() {
		return Cursor{}, Errorf(http.StatusBadRequest, "malformed cursor")
	}
	return c, nil
}

// PathID parses the UUID in the request path's {id}. A malformed id names
// nothing, so it gets notFound, the same answer as a row that does not
// exist or belongs to another tenant.
func PathID(r *http.Request, notFound error) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.UUID{}, notFound
	}
	return id, nil
}
