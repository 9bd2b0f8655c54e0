package idempotency_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// The table refuses an entry the store could not serve, whoever writes it:
// a completed entry without its response, an entry in progress without a
// holder or a lease, or with a lease that outlives the entry.
func TestTheTableRefusesEntriesBreakingTheStateRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	_, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)

	const insert = `INSERT INTO platform.idempotency_keys
	    (tenant_id, key, fingerprint, state, lease_token, lease_until, response_status, response_headers,
	     response_body, completed_at, created_at, expires_at)
	    VALUES ($1, 'new', '\x00', $2, $3, now() + $4::interval, $5, $6, $7, $8, now(), now() + interval '1 hour')`
	const token = "8e03978e-40d5-43e8-bc93-6894a57f9324"
	for _, c := range []struct {
		name, constraint, sql string
		args                  []any
	}{
		{"completed without a response", "idempotency_keys_completed_has_response",
			`UPDATE platform.idempotency_keys SET state = 'completed', lease_token = NULL, lease_until = NULL WHERE key = 'k'`, nil},
		{"completed without its headers", "idempotency_keys_completed_has_response",
			insert, []any{tenantA, "completed", nil, nil, 200, nil, []byte{}, "now"}},
		{"in progress without a holder", "idempotency_keys_in_progress_has_lease",
			`UPDATE platform.idempotency_keys SET lease_token = NULL WHERE key = 'k'`, nil},
		{"in progress without a lease", "idempotency_keys_in_progress_has_lease",
			insert, []any{tenantA, "in_progress", token, nil, nil, nil, nil, nil}},
		{"a lease that outlives the entry", "idempotency_keys_in_progress_has_lease",
			`UPDATE platform.idempotency_keys SET lease_until = expires_at + interval '1 second' WHERE key = 'k'`, nil},
		{"in progress with a lease that outlives the entry", "idempotency_keys_in_progress_has_lease",
			insert, []any{tenantA, "in_progress", token, "2 hours", nil, nil, nil, nil}},
	} {
		_, err := b.db.System.Exec(context.Background(), c.sql, c.args...)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s: %v", c.name, err)
		require.Equal(t, "23514", pgErr.Code, c.name) // check_violation
		require.Equal(t, c.constraint, pgErr.ConstraintName, c.name)
	}

	// The rules refuse only what breaks them: the store's own entry stands.
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err)
	require.EqualValues(t, "in_progress", entry.State)
	require.Equal(t, 1, countKeys(t, b.db))
}
