package idempotency_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
)

// Environment of the child process that dies inside a handler.
const (
	envCrashDB   = "IDEMPOTENCY_CRASH_DB_URL"
	envCrashMode = "IDEMPOTENCY_CRASH_MODE"
)

const crashBody = `{"sku":"crash"}`

// TestHolderKilledInsideHandler runs, in a child process, a request whose
// handler writes its order and then the process is killed with SIGKILL
// before the middleware can store the response.
//
// Claim mode: the order committed, the key stays in progress; retries get
// 409 until the lease runs out, then the retry runs the handler again (the
// documented limit of claim mode). Transactional mode: PostgreSQL rolled
// back the dead connection's transaction, so neither order nor key exists,
// and the retry runs at once.
func TestHolderKilledInsideHandler(t *testing.T) {
	if url := os.Getenv(envCrashDB); url != "" {
		serveThenDie(t, url, os.Getenv(envCrashMode) == "transactional")
		return
	}
	t.Parallel()
	for _, transactional := range []bool{false, true} {
		mode := map[bool]string{false: "claim", true: "transactional"}[transactional]
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			runDyingChild(t, b.db.URL(pgtest.RoleApp), mode)

			handler := createOrder(b.db.App)
			if transactional {
				handler = createOrderInTx()
			}
			srv := b.server(t, idempotency.Config{Transactional: transactional}, handler)
			retry := func() result { return do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", crashBody) }

			if transactional {
				waitForDeadBackends(t, b.db)
				require.Equal(t, 0, countOrders(t, b.db.System), "the write died with its transaction")
				require.Equal(t, 0, countKeys(t, b.db))
				require.Equal(t, http.StatusCreated, retry().status)
				require.Equal(t, 1, countOrders(t, b.db.System))
				return
			}
			require.Equal(t, 1, countOrders(t, b.db.System), "the write committed before the crash")
			entry, err := b.store.Lookup(tenantCtx(t, tenantA), "k")
			require.NoError(t, err)
			require.Equal(t, idempotency.StateInProgress, entry.State)
			requireProblem(t, retry(), http.StatusConflict)
			b.age(t, tenantA, "k", time.Minute)
			require.Equal(t, http.StatusCreated, retry().status, "the dead holder's claim is taken over")
			require.Equal(t, http.StatusCreated, retry().status)
			require.Equal(t, 2, countOrders(t, b.db.System))
		})
	}
}

func runDyingChild(t *testing.T, url, mode string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHolderKilledInsideHandler$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envCrashDB+"="+url,
		envCrashMode+"="+mode,
		// The child needs no server of its own: point it at this one.
		pgtest.EnvDatabaseURL+"="+pgtest.AdminURL(),
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child must die, output:\n%s", out)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "killed by SIGKILL, output:\n%s", out)
}

// serveThenDie is the child: it sends one request whose handler writes the
// order and then kills the process.
func serveThenDie(t *testing.T, url string, transactional bool) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{TTL: time.Hour, Lease: time.Minute})
	require.NoError(t, err)
	mw, err := idempotency.NewMiddleware(store, idempotency.Config{Transactional: transactional})
	require.NoError(t, err)
	write := createOrder(pool)
	if transactional {
		write = createOrderInTx()
	}
	die := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write.ServeHTTP(httptest.NewRecorder(), r)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // never reached: SIGKILL cannot be caught
	})
	srv := httptest.NewServer(withTenant(mw.Handler(die)))
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(crashBody))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(tenantHeader, tenantA)
	req.Header.Set(idempotency.HeaderName, "k")
	_, _ = srv.Client().Do(req)
	t.Fatal("the handler should have killed the process")
}

// waitForDeadBackends waits until PostgreSQL has noticed the killed
// child's connections and ended their transactions (releasing their
// advisory locks).
func waitForDeadBackends(t *testing.T, db *pgtest.DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := db.Admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'", db.Name).Scan(&n)
		return err == nil && n == 0
	}, 30*time.Second, 10*time.Millisecond)
}
