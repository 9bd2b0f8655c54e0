package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// maxErrorText is the longest error text stored for a run or a step;
// longer ones are cut on a rune boundary.
const maxErrorText = 8 << 10

// encodeJSON encodes v and checks that jsonb accepts the result, so that
// a refused value never reaches a batch it shares with other runs'
// checkpoints (one refused statement rolls back the whole batch).
func encodeJSON(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := pgtext.CheckJSON(data); err != nil {
		return nil, oneLine(err)
	}
	return data, nil
}

// checkStoredJSON checks a value encoded elsewhere (a workflow's output).
func checkStoredJSON(data []byte) error {
	if err := pgtext.CheckJSON(data); err != nil {
		return oneLine(err)
	}
	return nil
}

// oneLine flattens a joined error's lines into one message, so a recorded
// reason reads as one sentence and the internal sentinel does not escape.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", ": "))
}

// cleanError makes an error text storable in a text column: NUL and
// invalid UTF-8 become U+FFFD and the text is cut at maxErrorText bytes.
func cleanError(s string) string { return pgtext.Clean(s, maxErrorText) }

// checkName refuses an empty name or one a text column cannot hold.
func checkName(what, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, what)
	}
	if err := pgtext.CheckText(name); err != nil {
		return fmt.Errorf("%w: %s name %q: %v", ErrInvalidName, what, pgtext.Clean(name, 64), oneLine(err))
	}
	return nil
}

// refusedValue reports whether PostgreSQL refused a statement for one of
// its values (a data exception, or a value too large): sending it again
// cannot succeed, so the run it belongs to fails instead of being retried.
func refusedValue(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || pgErr.Code == "54000") {
		return pgErr, true
	}
	return nil, false
}

// tenantFrom returns the tenant ctx carries, or ErrNoTenant.
func tenantFrom(ctx context.Context) (string, error) {
	tenant, ok := rls.TenantFrom(ctx)
	if !ok {
		return "", ErrNoTenant
	}
	return rls.ParseTenant(tenant)
}
