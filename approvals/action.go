package approvals

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// Limits on an action's fields, so nothing unbounded reaches the database.
const (
	// MaxKindLength is the longest action kind accepted, in bytes.
	MaxKindLength = 200
	// MaxActorLength is the longest actor or decider accepted, in bytes.
	MaxActorLength = 500
	// MaxIdempotencyKeyLength is the longest idempotency key accepted.
	MaxIdempotencyKeyLength = 255
	// DefaultMaxPayloadBytes is Config.MaxPayloadBytes's default.
	DefaultMaxPayloadBytes = 64 << 10
)

// Action is a risky operation asked for by an actor: what the policy
// evaluates and what a request stores.
type Action struct {
	// Kind names the operation, for example "outbound.email". Required.
	Kind string
	// Actor identifies who asks. Service.Request fills it from the
	// context's principal (tenancy.PrincipalFrom) when empty.
	Actor string
	// Recipients is how many recipients the action reaches (zero or more).
	Recipients int
	// Risk is a risk score within [0, 1].
	Risk float64
	// Critical flags an action that must always be reviewed by default.
	Critical bool
	// Payload is what the continuation needs to carry the action out, as
	// JSON. Optional; empty is stored as JSON null.
	Payload json.RawMessage
	// IdempotencyKey, when set, identifies the action instead of its
	// fingerprint: asking twice with one key returns one request.
	// Optional.
	IdempotencyKey string
}

// Validate reports the first field of a that cannot be stored.
func (a Action) Validate() error {
	switch {
	case a.Kind == "" || len(a.Kind) > MaxKindLength || !utf8.ValidString(a.Kind):
		return fmt.Errorf("%w: kind must be 1 to %d bytes of UTF-8", ErrInvalidAction, MaxKindLength)
	case a.Actor == "" || len(a.Actor) > MaxActorLength || !utf8.ValidString(a.Actor):
		return fmt.Errorf("%w: actor must be 1 to %d bytes of UTF-8", ErrInvalidAction, MaxActorLength)
	case a.Recipients < 0 || a.Recipients > math.MaxInt32:
		return fmt.Errorf("%w: recipients %d out of range", ErrInvalidAction, a.Recipients)
	case math.IsNaN(a.Risk) || a.Risk < 0 || a.Risk > 1:
		return fmt.Errorf("%w: risk %v must be within [0, 1]", ErrInvalidAction, a.Risk)
	case len(a.IdempotencyKey) > MaxIdempotencyKeyLength || !utf8.ValidString(a.IdempotencyKey):
		return fmt.Errorf("%w: idempotency key must be at most %d bytes of UTF-8", ErrInvalidAction, MaxIdempotencyKeyLength)
	}
	// PostgreSQL refuses NUL in text and jsonb: refuse it here, as the
	// action's error rather than the database's.
	for _, f := range [...]struct{ name, value string }{{"kind", a.Kind}, {"actor", a.Actor}, {"idempotency key", a.IdempotencyKey}} {
		if err := pgtext.CheckText(f.value); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidAction, f.name, err)
		}
	}
	if len(a.Payload) > 0 {
		if err := pgtext.CheckJSON(a.Payload); err != nil {
			return fmt.Errorf("%w: payload: %w", ErrInvalidAction, err)
		}
	}
	return nil
}

// Fingerprint is the hex SHA-256 of everything that makes the action what
// it is (kind, actor, recipients, risk, critical, payload with
// insignificant whitespace removed), with each field length-prefixed so no
// two different actions can share an encoding. Requests are deduplicated
// within one tenant, so the tenant is not part of it.
func (a Action) Fingerprint() string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(a.Kind))
	field([]byte(a.Actor))
	field(strconv.AppendInt(nil, int64(a.Recipients), 10))
	field(strconv.AppendFloat(nil, a.Risk, 'g', -1, 64))
	field(strconv.AppendBool(nil, a.Critical))
	field(compactPayload(a.Payload))
	return hex.EncodeToString(h.Sum(nil))
}

// dedupeKey is what makes two asks "the same action": the idempotency key
// when given, otherwise the fingerprint. The prefixes keep the two spaces
// apart.
func (a Action) dedupeKey(fingerprint string) string {
	if a.IdempotencyKey != "" {
		return "key:" + a.IdempotencyKey
	}
	return "fp:" + fingerprint
}

func compactPayload(p json.RawMessage) []byte {
	if len(p) == 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return p
	}
	return buf.Bytes()
}

// canonicalTenant validates a tenant id and returns its canonical form; a
// malformed one is ErrInvalidTenant (the shared value) with the id quoted.
func canonicalTenant(tenant string) (string, error) {
	return rls.ParseTenant(tenant)
}

// isCanonicalTenant reports whether s is a UUID in canonical form (lower
// case, hyphenated), the form the library's context and transactions
// carry, without allocating: Policy.Evaluate sits on every request.
func isCanonicalTenant(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
