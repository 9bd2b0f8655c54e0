package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/errs"
)

func TestTenantMismatchMatchesItsSentinel(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("durable: start: %w", &errs.TenantMismatchError{Context: "b", Transaction: "a"})
	require.ErrorIs(t, err, errs.ErrTenantMismatch)
	var typed *errs.TenantMismatchError
	require.ErrorAs(t, err, &typed)
	require.Equal(t, "b", typed.Context)
	require.Contains(t, err.Error(), "scoped to a")
	require.False(t, errors.Is(err, errs.ErrNoTenant))
}

func TestConfigWrapsErrInvalidConfig(t *testing.T) {
	t.Parallel()
	err := errs.Config("dlq", "Workers must be positive, got %d", -1)
	require.ErrorIs(t, err, errs.ErrInvalidConfig)
	require.Equal(t, "dlq: invalid configuration: Workers must be positive, got -1", err.Error())
}
