package webhooksig

import (
	"crypto/sha256"
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
	return &Moyasar{name: orDefault(cfg.Name, "moyasar"), digests: digests}, nil
}

// Name implements Verifier.
func (v *Moyasar) Name() string { return v.name }

// moyasarEvent is the part of a Moyasar event the check reads.
type moyasarEvent struct {
	ID          string  `json:"id"`
	SecretToken *string `json:"secret_token"`
}

// Verify implements Verifier. The delivery id is the event's "id".
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
	return Delivery{Verifier: v.name, ID: event.ID}, nil
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
