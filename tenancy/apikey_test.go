package tenancy_test

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/clocktest"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// fakeClock is a settable clock.
type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock { return clocktest.New(testNow) }

func newAPIKeys(t testing.TB, db *pgtest.DB, clock *fakeClock) *tenancy.APIKeys {
	t.Helper()
	keys, err := tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{Now: clock.Now})
	require.NoError(t, err)
	return keys
}

func TestAPIKeysLifecycle(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newFakeClock()
	keys := newAPIKeys(t, db, clock)
	ctxA := tenantContext(t, tenantA)

	issued, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "CI deploys", Scopes: []string{"deals:read"}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(issued.Key, issued.Prefix+"_"), "the prefix is the visible start of the key")
	require.True(t, strings.HasPrefix(issued.Key, "dlx_"))
	require.Len(t, issued.Key, 96)
	require.Equal(t, tenantA, issued.TenantID)
	require.Equal(t, testNow, issued.CreatedAt)

	p, err := keys.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.Equal(t, tenancy.Principal{
		Subject: issued.ID, TenantID: tenantA, Scopes: []string{"deals:read"},
		Method: tenancy.AuthAPIKey, KeyID: issued.Prefix,
	}, p)

	listed, err := keys.List(ctxA)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, issued.ID, listed[0].ID)
	require.Equal(t, "CI deploys", listed[0].Name)
	require.NotNil(t, listed[0].LastUsedAt)
	require.True(t, testNow.Equal(*listed[0].LastUsedAt))
	require.Nil(t, listed[0].RevokedAt)

	clock.Advance(time.Hour)
	require.NoError(t, keys.Revoke(ctxA, issued.ID))
	require.NoError(t, keys.Revoke(ctxA, issued.ID), "revoking twice succeeds")
	_, err = keys.Authenticate(ctxA, issued.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)
	listed, err = keys.List(ctxA)
	require.NoError(t, err)
	require.NotNil(t, listed[0].RevokedAt)
	require.True(t, testNow.Add(time.Hour).Equal(*listed[0].RevokedAt))

	// The table holds only the hash: no column of any row contains the key
	// or its secret.
	secret := issued.Key[len(issued.Prefix)+1:]
	rows, err := db.System.Query(ctxA, "SELECT t::text, key_hash FROM platform.tenancy_api_keys t")
	require.NoError(t, err)
	var (
		row  string
		hash []byte
	)
	n, err := pgx.ForEachRow(rows, []any{&row, &hash}, func() error {
		require.NotContains(t, row, secret)
		require.NotContains(t, row, issued.Key)
		return nil
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, n.RowsAffected())
	want := sha256.Sum256([]byte(issued.Key))
	require.Equal(t, want[:], hash)
}

func TestAPIKeysAreTenantScoped(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	ctxA, ctxB := tenantContext(t, tenantA), tenantContext(t, tenantB)
	issuedA, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "a"})
	require.NoError(t, err)
	_, err = keys.Create(ctxB, tenancy.NewAPIKey{Name: "b"})
	require.NoError(t, err)

	listedB, err := keys.List(ctxB)
	require.NoError(t, err)
	require.Len(t, listedB, 1)
	require.Equal(t, "b", listedB[0].Name)

	require.ErrorIs(t, keys.Revoke(ctxB, issuedA.ID), tenancy.ErrAPIKeyNotFound)
	require.ErrorIs(t, keys.Revoke(ctxB, "not-a-uuid"), tenancy.ErrAPIKeyNotFound)
	p, err := keys.Authenticate(ctxB, issuedA.Key)
	require.NoError(t, err, "B's revoke did not touch A's key")
	require.Equal(t, tenantA, p.TenantID, "the key's tenant wins over the context's")

	_, err = keys.Create(testContext(t), tenancy.NewAPIKey{Name: "x"})
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	_, err = keys.List(testContext(t))
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	require.ErrorIs(t, keys.Revoke(testContext(t), issuedA.ID), tenancy.ErrNoTenant)
}

func TestAPIKeysRefuseForgedAndMalformedKeys(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	ctxA := tenantContext(t, tenantA)
	issued, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "a"})
	require.NoError(t, err)
	other, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "b"})
	require.NoError(t, err)

	last := issued.Key[len(issued.Key)-1]
	flipped := byte('a')
	if last == 'a' {
		flipped = 'b'
	}
	for name, key := range map[string]string{
		"wrong secret":                     issued.Key[:len(issued.Key)-1] + string(flipped),
		"prefix of one, secret of another": issued.Prefix + other.Key[len(other.Prefix):],
		"empty":                            "",
		"short":                            "dlx_abc_def",
		"other brand":                      "xyz" + issued.Key[3:],
		"upper case":                       strings.ToUpper(issued.Key),
		"unknown":                          "dlx_" + strings.Repeat("a", 39) + "_" + strings.Repeat("b", 52),
	} {
		_, err := keys.Authenticate(ctxA, key)
		require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey, name)
	}
}

func TestAPIKeysCreateValidatesAndCreateTxRollsBack(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	ctxA := tenantContext(t, tenantA)
	for name, spec := range map[string]tenancy.NewAPIKey{
		"empty name":     {},
		"long name":      {Name: strings.Repeat("n", 201)},
		"space in scope": {Name: "x", Scopes: []string{"a b"}},
		"empty scope":    {Name: "x", Scopes: []string{""}},
		"many scopes":    {Name: "x", Scopes: make([]string, 65)},
	} {
		_, err := keys.Create(ctxA, spec)
		require.ErrorIs(t, err, tenancy.ErrInvalidAPIKeySpec, name)
	}

	var issued tenancy.IssuedAPIKey
	err := tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error {
		var err error
		issued, err = keys.CreateTx(ctxA, tx, tenancy.NewAPIKey{Name: "rolled back"})
		require.NoError(t, err)
		return errTestRollback
	})
	require.ErrorIs(t, err, errTestRollback)
	_, err = keys.Authenticate(ctxA, issued.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)
	listed, err := keys.List(ctxA)
	require.NoError(t, err)
	require.Empty(t, listed)
}

func TestAPIKeysLastUsedIsThrottled(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newFakeClock()
	keys := newAPIKeys(t, db, clock)
	ctxA := tenantContext(t, tenantA)
	issued, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "a"})
	require.NoError(t, err)

	lastUsed := func() time.Time {
		listed, err := keys.List(ctxA)
		require.NoError(t, err)
		require.NotNil(t, listed[0].LastUsedAt)
		return *listed[0].LastUsedAt
	}
	_, err = keys.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.True(t, testNow.Equal(lastUsed()))

	clock.Advance(30 * time.Second)
	_, err = keys.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.True(t, testNow.Equal(lastUsed()), "within the interval nothing is written")

	clock.Advance(31 * time.Second)
	_, err = keys.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.True(t, testNow.Add(61*time.Second).Equal(lastUsed()))
}

func TestAPIKeysDatabaseFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	issued, err := keys.Create(tenantContext(t, tenantA), tenancy.NewAPIKey{Name: "a"})
	require.NoError(t, err)
	db.App.Close()
	_, err = keys.Authenticate(testContext(t), issued.Key)
	require.ErrorIs(t, err, tenancy.ErrAuthUnavailable)
	require.Equal(t, http.StatusServiceUnavailable, tenancy.StatusOf(err))
}

func TestAuthenticatorAcceptsJWTAndAPIKeyOnOneRoute(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	auth, err := tenancy.NewAuthenticator(tenancy.AuthConfig{JWT: newVerifier(t), APIKeys: keys})
	require.NoError(t, err)
	srv := principalServer(t, auth.Handler)
	ctxB := tenantContext(t, tenantB)
	issued, err := keys.Create(ctxB, tenancy.NewAPIKey{Name: "a", Scopes: []string{"deals:write"}})
	require.NoError(t, err)
	revoked, err := keys.Create(ctxB, tenancy.NewAPIKey{Name: "b"})
	require.NoError(t, err)
	require.NoError(t, keys.Revoke(ctxB, revoked.ID))
	token := sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, validClaims())

	res := call(t, srv, bearer(token))
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, tenancy.AuthJWT, res.principal.Method)
	require.Equal(t, tenantA, res.principal.TenantID)

	for _, headers := range []map[string]string{bearer(issued.Key), {"X-API-Key": issued.Key}} {
		res := call(t, srv, headers)
		require.Equal(t, http.StatusOK, res.status, res.body)
		require.Equal(t, tenancy.Principal{
			Subject: issued.ID, TenantID: tenantB, Scopes: []string{"deals:write"},
			Method: tenancy.AuthAPIKey, KeyID: issued.Prefix,
		}, res.principal)
	}

	const invalid = `Bearer realm="api", error="invalid_token"`
	for name, headers := range map[string]map[string]string{
		"revoked key":          bearer(revoked.Key),
		"revoked in X-API-Key": {"X-API-Key": revoked.Key},
		"unknown key":          bearer("dlx_" + strings.Repeat("a", 39) + "_" + strings.Repeat("b", 52)),
		"malformed key":        {"X-API-Key": "dlx_nope"},
		"both headers":         {"X-API-Key": issued.Key, "Authorization": "Bearer " + token},
		"huge X-API-Key":       {"X-API-Key": strings.Repeat("k", 1<<20)},
	} {
		res := call(t, srv, headers)
		require.Equal(t, http.StatusUnauthorized, res.status, name)
		require.Equal(t, invalid, res.challenge, name)
	}
	res = call(t, srv, nil)
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, `Bearer realm="api"`, res.challenge)
}

func TestAuthenticatorWithAPIKeysOnly(t *testing.T) {
	t.Parallel()
	testKeys(t)
	db := pgtest.New(t)
	auth, err := tenancy.NewAuthenticator(tenancy.AuthConfig{APIKeys: newAPIKeys(t, db, newFakeClock()), Realm: "deals"})
	require.NoError(t, err)
	srv := principalServer(t, auth.Handler)
	res := call(t, srv, bearer(sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, validClaims())))
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, `Bearer realm="deals", error="invalid_token"`, res.challenge)

	_, err = tenancy.NewAuthenticator(tenancy.AuthConfig{})
	require.ErrorIs(t, err, tenancy.ErrInvalidConfig)
	_, err = tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{Brand: "Bad_Brand"})
	require.ErrorIs(t, err, tenancy.ErrInvalidConfig)
}

// TestAPIKeysTxNeverRescopesTheCallersTx: CreateTx and RevokeTx work for
// the tenant the caller's transaction is scoped to, refuse a context naming
// another, refuse an unscoped transaction, and never change its scope.
func TestAPIKeysTxNeverRescopesTheCallersTx(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	ctxA, ctxB := tenantContext(t, tenantA), tenantContext(t, tenantB)
	issuedB, err := keys.Create(ctxB, tenancy.NewAPIKey{Name: "of B"})
	require.NoError(t, err)

	err = tenancy.InTx(ctxA, db.App, func(txA pgx.Tx) error {
		_, err := keys.CreateTx(ctxB, txA, tenancy.NewAPIKey{Name: "forged"})
		var mismatch *tenancy.TenantMismatchError
		require.ErrorAs(t, err, &mismatch)
		require.Equal(t, tenancy.TenantMismatchError{Context: tenantB, Transaction: tenantA}, *mismatch)
		require.Equal(t, tenantA, txSetting(t, ctxA, txA))

		err = keys.RevokeTx(ctxB, txA, issuedB.ID)
		require.ErrorIs(t, err, tenancy.ErrTenantMismatch)
		require.Equal(t, tenantA, txSetting(t, ctxA, txA))

		// A context without a tenant takes the transaction's.
		issuedA, err := keys.CreateTx(testContext(t), txA, tenancy.NewAPIKey{Name: "of A"})
		require.NoError(t, err)
		require.Equal(t, tenantA, issuedA.TenantID)
		require.NoError(t, keys.RevokeTx(ctxA, txA, issuedA.ID))
		require.Equal(t, tenantA, txSetting(t, ctxA, txA))
		return nil
	})
	require.NoError(t, err)

	// An unscoped transaction is refused, and stays unscoped.
	err = pgx.BeginFunc(ctxA, db.App, func(tx pgx.Tx) error {
		_, err := keys.CreateTx(ctxA, tx, tenancy.NewAPIKey{Name: "unscoped"})
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		require.ErrorIs(t, keys.RevokeTx(ctxA, tx, issuedB.ID), tenancy.ErrNoTenant)
		require.Empty(t, txSetting(t, ctxA, tx))
		return nil
	})
	require.NoError(t, err)

	// B's key is untouched; A has exactly the one key it revoked itself.
	_, err = keys.Authenticate(ctxB, issuedB.Key)
	require.NoError(t, err)
	listed, err := keys.List(ctxA)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, "of A", listed[0].Name)
	require.NotNil(t, listed[0].RevokedAt)
}

func TestAPIKeysCache(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newFakeClock()
	cached, err := tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{Now: clock.Now, CacheTTL: time.Minute})
	require.NoError(t, err)
	uncached := newAPIKeys(t, db, clock)
	ctxA := tenantContext(t, tenantA)

	issued, err := cached.Create(ctxA, tenancy.NewAPIKey{Name: "cached", Scopes: []string{"deals:read"}})
	require.NoError(t, err)
	want := tenancy.Principal{Subject: issued.ID, TenantID: tenantA, Scopes: []string{"deals:read"},
		Method: tenancy.AuthAPIKey, KeyID: issued.Prefix}
	p, err := cached.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.Equal(t, want, p)

	// Revoked behind the service's back (in SQL, or by another instance):
	// the cache answers until its entry expires, the database at once.
	_, err = db.System.Exec(ctxA, "UPDATE platform.tenancy_api_keys SET revoked_at = now() WHERE id = $1", issued.ID)
	require.NoError(t, err)
	_, err = uncached.Authenticate(ctxA, issued.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)
	p, err = cached.Authenticate(ctxA, issued.Key)
	require.NoError(t, err, "a warm key is answered from the cache")
	require.Equal(t, want, p)
	p.Scopes = append(p.Scopes, "admin")
	p, err = cached.Authenticate(ctxA, issued.Key)
	require.NoError(t, err)
	require.Equal(t, want, p, "a caller's append does not reach the cache")
	// A key differing in one byte of its secret is not a hit.
	forged := issued.Key[:len(issued.Key)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(issued.Key, "a")]
	_, err = cached.Authenticate(ctxA, forged)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)

	clock.Advance(time.Minute)
	_, err = cached.Authenticate(ctxA, issued.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey, "after CacheTTL the database decides")

	// A revocation through the service itself takes effect at once.
	second, err := cached.Create(ctxA, tenancy.NewAPIKey{Name: "second"})
	require.NoError(t, err)
	_, err = cached.Authenticate(ctxA, second.Key)
	require.NoError(t, err)
	require.NoError(t, cached.Revoke(ctxA, strings.ToUpper(second.ID)))
	_, err = cached.Authenticate(ctxA, second.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)

	// So does RevokeTx, inside the caller's transaction.
	third, err := cached.Create(ctxA, tenancy.NewAPIKey{Name: "third"})
	require.NoError(t, err)
	_, err = cached.Authenticate(ctxA, third.Key)
	require.NoError(t, err)
	require.NoError(t, tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error { return cached.RevokeTx(ctxA, tx, third.ID) }))
	_, err = cached.Authenticate(ctxA, third.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)
}

func TestAPIKeysCacheConfig(t *testing.T) {
	db := pgtest.New(t)
	for _, cfg := range []tenancy.APIKeysConfig{{CacheTTL: -time.Second}, {CacheTTL: time.Second, CacheSize: -1}} {
		_, err := tenancy.NewAPIKeys(db.App, cfg)
		require.ErrorIs(t, err, tenancy.ErrInvalidConfig)
	}
}

func TestAPIKeysCacheFull(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newFakeClock()
	keys, err := tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{Now: clock.Now, CacheTTL: time.Minute, CacheSize: 1})
	require.NoError(t, err)
	ctxA := tenantContext(t, tenantA)
	first, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "first"})
	require.NoError(t, err)
	second, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "second"})
	require.NoError(t, err)
	for _, k := range []string{first.Key, second.Key} {
		_, err = keys.Authenticate(ctxA, k)
		require.NoError(t, err)
	}
	_, err = db.System.Exec(ctxA, "UPDATE platform.tenancy_api_keys SET revoked_at = now()")
	require.NoError(t, err)
	_, err = keys.Authenticate(ctxA, first.Key)
	require.NoError(t, err, "the first key filled the cache")
	_, err = keys.Authenticate(ctxA, second.Key)
	require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey, "the second was not cached")

	// Once the first entry expires, a full cache makes room.
	clock.Advance(time.Minute)
	third, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "third"})
	require.NoError(t, err)
	_, err = keys.Authenticate(ctxA, third.Key)
	require.NoError(t, err)
	_, err = db.System.Exec(ctxA, "UPDATE platform.tenancy_api_keys SET revoked_at = now()")
	require.NoError(t, err)
	_, err = keys.Authenticate(ctxA, third.Key)
	require.NoError(t, err, "cached after the expired entry was dropped")
}
