package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// MoyasarConfig configures a Moyasar verifier.
type MoyasarConfig struct {
	// Name is the verifier's name. Default "moyasar".
	Name string
	// Tokens are the active webhook secret tokens, as entered when the
	// webhook was created in Moyasar. Required.
	Tokens []string
}

// Moyasar verifies Moyasar's webhooks, which carry no signature header:
// the JSON body's "secret_token" must equal a configured token. Tokens are
// compared through their SHA-256 digests with hmac.Equal, so neither the
// content nor the length of a token leaks through timing.
type Moyasar struct {
	name    string
	digests [][]byte
}

// NewMoyasar returns a Moyasar verifier, or an error wrapping ErrInvalidConfig.
func NewMoyasar(cfg MoyasarConfig) (*Moyasar, error) {
	tokens, err := stringSecrets("moyasar", cfg.Tokens)
	if err != nil {
		return nil, err
	}
	digests := make([][]byte, len(tokens))
	for i, token := range tokens {
		sum := sha256.Sum256(token)
		digests[i] = sum[:]
	}
	return &Moyasar{name: cmp.Or(cfg.Name, "moyasar"), digests: digests}, nil
}

// Name implements Verifier.
func (v *Moyasar) Name() string { return v.name }

// moyasarEvent is the part of a Moyasar event the check reads.
type moyasarEvent struct {
	ID          string  `json:"id"`
	SecretToken *string `json:"secret_token"`
}

// Verify implements Verifier. The delivery id is the event's "id", or
// for an event without one the digest of the body ("body:" and hex
// SHA-256), so every delivery is guarded.
//
// Moyasar signs nothing: the token authenticates the body, and whoever
// sees one delivery holds the token and can write any event, its id
// included. The replay guard therefore stops the sender's own repeats, not
// a party that captured a delivery; keep the endpoint on TLS and rotate the
// token if one may have leaked.
func (v *Moyasar) Verify(m *Message) (Delivery, error) {
	var event moyasarEvent
	if err := json.Unmarshal(m.Body, &event); err != nil {
		return Delivery{}, fail(v.name, "body", ErrMalformedBody)
	}
	if event.SecretToken == nil || *event.SecretToken == "" {
		return Delivery{}, fail(v.name, "secret_token", ErrMissingHeader)
	}
	got := sha256.Sum256([]byte(*event.SecretToken))
	if _, ok := anyEqual(v.digests, [][]byte{got[:]}); !ok {
		return Delivery{}, fail(v.name, "secret_token", ErrBadSignature)
	}
	id := event.ID
	if id == "" {
		id = bodyID(m.Body)
	}
	return Delivery{Verifier: v.name, ID: id}, nil
}

// SignMoyasar returns event with its "secret_token" member set to token,
// as Moyasar sends it. event must be a JSON object; otherwise the error
// wraps ErrMalformedBody.
func SignMoyasar(token string, event []byte) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(event, &fields); err != nil || fields == nil {
		return nil, fail("moyasar", "body", ErrMalformedBody)
	}
	encoded, err := json.Marshal(token)
	if err != nil {
		return nil, err
	}
	fields["secret_token"] = encoded
	return json.Marshal(fields)
}

// bodyID is the delivery id of an event without one: "body:" and the hex
// SHA-256 of the body.
func bodyID(body []byte) string {
	sum := sha256.Sum256(body)
	return "body:" + hex.EncodeToString(sum[:])
}
