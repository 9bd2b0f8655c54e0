// Package tenancy says who is calling and for which tenant, and makes
// PostgreSQL enforce it with row-level security (RLS).
//
// # Overview
//
// A request passes through an authentication middleware, which puts a
// Principal and its tenant in the request's context, and reaches handlers
// that open tenant-scoped transactions:
//
//	verifier, err := tenancy.NewJWTVerifier(ctx, tenancy.JWTConfig{
//		JWKSURL:    "https://auth.example.com/.well-known/jwks.json",
//		Algorithms: []string{"RS256"},
//		Issuer:     "https://auth.example.com",
//		Audience:   "deals-api",
//	})
//	defer verifier.Close() // stops the JWKS refresh
//	keys, err := tenancy.NewAPIKeys(appPool, tenancy.APIKeysConfig{})
//	auth, err := tenancy.NewAuthenticator(tenancy.AuthConfig{JWT: verifier, APIKeys: keys})
//	http.Handle("/deals", auth.Handler(dealsHandler))
//
//	// in dealsHandler:
//	err := tenancy.InTx(r.Context(), appPool, func(tx pgx.Tx) error {
//		rows, err := tx.Query(ctx, "SELECT id, title FROM deals") // only this tenant's rows
//		...
//	})
//
// Two sub-packages hold what is not on every request's path:
// tenancy/ratelimit (per-tenant and per-credential rate limits, placed
// after the authentication middleware) and tenancy/rlspolicy (the row-level
// security policy DDL for migrations, and the audit release gates run).
//
// # Context
//
// WithTenant and WithPrincipal put a tenant (a UUID, canonicalised; anything
// else is ErrInvalidTenant before it can reach SQL) and a Principal (subject,
// tenant, scopes, how it authenticated) in a context; TenantFrom and
// PrincipalFrom read them. The context key is unexported.
//
// # Transactions
//
// InTx opens a transaction on a pool or connection, runs
// SELECT set_config('app.tenant_id', <tenant>, true) and then the caller's
// function, committing on nil and rolling back otherwise. Without a tenant in
// the context it returns ErrNoTenant and touches nothing: Go denies by
// default, as the policies do. InTxForTenant does the same for an explicitly
// named tenant, for background work on the system role. The setting is local
// to the transaction, so it never leaks to the next user of a pooled
// connection. On a pool or connection, BEGIN and set_config travel in one
// round trip.
//
// Nothing in this package changes the scope of a transaction it was given.
// Given a pgx.Tx, InTx and InTxForTenant run the function in a savepoint
// and check the transaction's tenant instead of setting it (PostgreSQL keeps
// a setting made in a savepoint after RELEASE, so setting it there would
// re-scope the rest of the caller's transaction): a transaction scoped to
// another tenant is refused with a *TenantMismatchError (errors.Is
// ErrTenantMismatch), an unscoped one with ErrNoTenant. APIKeys.CreateTx and
// RevokeTx follow the same rule, as every …Tx of the library does.
// SetTenantTx is the one function that sets the tenant of an existing
// transaction, for code that opened that transaction itself.
//
// # JWT
//
// JWTVerifier checks bearer tokens with github.com/golang-jwt/jwt/v5 against
// static keys (HMAC, RSA, ECDSA, Ed25519; several at once for rotation,
// chosen by kid) and optionally a JWKS URL (keys parsed with
// github.com/MicahParks/keyfunc/v3). The JWKS is refreshed in the
// background until Close, whatever context the constructor was given, and a
// token naming a kid the verifier does not hold triggers a fetch shared by
// concurrent requests and limited to one per JWKSMinRefreshInterval (one
// minute by default), so a key rotation at the identity provider is picked
// up at once while made-up kids cannot flood it. Algorithms are pinned, each
// key verifies only its own algorithm, and issuer, audience and exp are
// required, with a small leeway. The tenant comes from a configurable claim
// (default "tenant_id").
//
// # API keys
//
// APIKeys issues keys of the form <brand>_<id>_<secret> ("dlx_" by default):
// id is base32 of the tenant's UUID and 8 random bytes, secret base32 of 32
// random bytes. The key is shown once; the table platform.tenancy_api_keys
// (tenant-scoped under RLS) keeps the prefix <brand>_<id> in clear, to find
// the key, and a SHA-256 hash of the whole key, compared in constant time. A
// slow password hash (bcrypt, argon2) protects guessable secrets; 256 random
// bits cannot be guessed, so a fast hash is enough and keeps authentication
// cheap.
//
// An API key must be looked up before the tenant is known, yet the table is
// under RLS and the app role is bound by it. Rather than a SECURITY DEFINER
// function (which would have to bypass the policy, or be owned by a role
// that does) or a lookup on the BYPASSRLS system role, the key carries its
// tenant: Authenticate decodes the tenant from the key, opens a transaction
// scoped to that tenant on the app role, and looks the prefix up there like
// any other tenant query. A forged key that names another tenant only
// searches that tenant's keys and still has to match a 256-bit secret. The
// cost is that a key reveals its tenant's id, which is an identifier, not a
// secret.
//
// With APIKeysConfig.CacheTTL set, a verified key is kept in memory (by the
// SHA-256 of the whole key) for that long, and Authenticate answers it
// without a transaction; a revocation reaches other instances within the
// TTL. The default is no cache.
//
// Authenticator accepts either credential on one route: a bearer credential
// that starts with the API-key brand is an API key, any other a JWT; the
// X-API-Key header is accepted too.
//
// # Errors over HTTP
//
// Every refusal is an RFC 9457 application/problem+json response. Missing or
// bad credentials (including a header longer than MaxHeaderBytes, 8 KiB by
// default) are 401 with WWW-Authenticate: Bearer (with error="invalid_token"
// when a credential was sent); a valid credential without a usable tenant is
// 403; a database failure while checking an API key is 503. A client's
// mistake is never a 500. Errors wrap sentinels (ErrNoCredentials,
// ErrMalformedCredentials, ErrInvalidToken, ErrInvalidAPIKey,
// ErrTenantNotGranted, ErrAuthUnavailable); StatusOf maps them.
//
// # Migrations
//
// Migrate creates the package's table in schema platform; run it as the
// schema's owner on every start. Revoked API keys are kept (their history
// is the audit trail), so the package expires no rows and has no sweeper.
//
// # Shared conventions
//
// ErrNoTenant, ErrInvalidTenant, ErrInvalidConfig, ErrTenantMismatch and
// TenantMismatchError are the library's shared values, re-exported by every
// package that returns them; DB is the library's one database interface,
// which NewAPIKeys takes.
package tenancy
