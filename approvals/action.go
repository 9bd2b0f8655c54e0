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
	// TenantID is the tenant the action belongs to. Service.Request fills
	// it from the context (tenancy.TenantFrom) when empty.
	TenantID string
	// Actor identifies who asks. Service.Request fills it from the
	// context's principal when empty.
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
	case len(a.Payload) > 0 && !json.Valid(a.Payload):
		return fmt.Errorf("%w: payload is not valid JSON", ErrInvalidAction)
	}
	if _, err := canonicalTenant(a.TenantID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAction, err)
	}
	return nil
}

// Fingerprint is the hex SHA-256 of everything that makes the action what
// it is (tenant, kind, actor, recipients, risk, critical, payload with
// insignificant whitespace removed), with each field length-prefixed so no
// two different actions can share an encoding.
func (a Action) Fingerprint() string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(a.TenantID))
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

func canonicalTenant(tenant string) (string, error) {
	canonical, err := rls.ParseTenant(tenant)
	if err != nil {
		return "", ErrInvalidTenant
	}
	return canonical, nil
}
