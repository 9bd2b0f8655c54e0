// Package apikeys lets a tenant's administrators issue, list and revoke the
// tenant's API keys: POST, GET /api/v1/api-keys and DELETE
// /api/v1/api-keys/{id}. Only a principal with the admin scope may; others
// get 403. The key's secret is in the creation response only.
//
// These routes are not behind the idempotency middleware on purpose: a
// stored response would keep the new key's secret in clear in the
// idempotency table for a day, where the key table keeps only its hash.
package apikeys

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// AdminScope is the scope a principal needs to manage API keys.
const AdminScope = "admin"

// Handlers serves the API-key endpoints.
type Handlers struct {
	Keys         *tenancy.APIKeys
	MaxBodyBytes int64
	Log          *slog.Logger
}

// Key is a stored key as the API shows it, without its secret.
type Key struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// Issued is a new key with its secret, shown once.
type Issued struct {
	Key
	Secret string `json:"key"`
}

func toKey(k tenancy.APIKey) Key {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return Key{ID: k.ID, Prefix: k.Prefix, Name: k.Name, Scopes: scopes, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

// RequireAdmin admits only principals with AdminScope.
func RequireAdmin(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || !p.HasScope(AdminScope) {
			httpx.Fail(w, r, log, httpx.Errorf(http.StatusForbidden, "managing API keys needs the %q scope", AdminScope))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type createInput struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// Create handles POST /api/v1/api-keys.
func (h *Handlers) Create(w http.ResponseWriter, r *http.Request) {
	var in createInput
	if err := httpx.Decode(w, r, h.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	issued, err := h.Keys.Create(r.Context(), tenancy.NewAPIKey{Name: in.Name, Scopes: in.Scopes})
	if errors.Is(err, tenancy.ErrInvalidAPIKeySpec) {
		err = httpx.Errorf(http.StatusBadRequest, "name must have 1 to %d characters and each scope 1 to 128 printable characters without spaces (at most %d scopes)",
			tenancy.MaxAPIKeyNameLength, tenancy.MaxAPIKeyScopes)
	}
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/api-keys/"+issued.ID)
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, Issued{Key: toKey(issued.APIKey), Secret: issued.Key})
}

// List handles GET /api/v1/api-keys: the tenant's keys, newest first,
// revoked ones included.
func (h *Handlers) List(w http.ResponseWriter, r *http.Request) {
	keys, err := h.Keys.List(r.Context())
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	out := make([]Key, len(keys))
	for i, k := range keys {
		out[i] = toKey(k)
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"items": out})
}

// Revoke handles DELETE /api/v1/api-keys/{id}: 204, or 404 for a key the
// tenant does not have.
func (h *Handlers) Revoke(w http.ResponseWriter, r *http.Request) {
	err := h.Keys.Revoke(r.Context(), r.PathValue("id"))
	if errors.Is(err, tenancy.ErrAPIKeyNotFound) {
		err = httpx.Errorf(http.StatusNotFound, "no such API key")
	}
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
