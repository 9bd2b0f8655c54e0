// Package health serves /health (liveness: the process answers) and
// /health/deep (each dependency checked, with a status per dependency and
// 503 when a required one is down).
package health

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Statuses of a check and of the whole.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded" // works, but needs a look; never fails the whole
	StatusDown     = "down"
)

// DefaultTimeout bounds each check of /health/deep.
const DefaultTimeout = 2 * time.Second

// Result is one check's outcome.
type Result struct {
	Status   string         `json:"status"`
	Required bool           `json:"required"`
	Detail   string         `json:"detail,omitempty"`
	Data     map[string]any `json:"data,omitempty"`
}

// Check is one dependency.
type Check struct {
	// Name is the key in the report.
	Name string
	// Required makes the whole report down (503) when this check is down.
	Required bool
	// Run checks the dependency within ctx's deadline.
	Run func(ctx context.Context) Result
}

// Report is the body of /health/deep.
type Report struct {
	Status string            `json:"status"`
	Checks map[string]Result `json:"checks"`
}

// Live serves /health: 200 while the process serves requests.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusOK, map[string]string{"status": StatusOK})
}

// Deep serves /health/deep, running its checks concurrently.
type Deep struct {
	Checks []Check
	// Timeout bounds each check. Default: DefaultTimeout.
	Timeout time.Duration
}

// Check runs every check and returns the report.
func (d *Deep) Check(ctx context.Context) Report {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rep := Report{Status: StatusOK, Checks: make(map[string]Result, len(d.Checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range d.Checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res := c.Run(cctx)
			res.Required = c.Required
			mu.Lock()
			defer mu.Unlock()
			rep.Checks[c.Name] = res
			if res.Status == StatusDown && c.Required {
				rep.Status = StatusDown
			} else if res.Status != StatusOK && rep.Status == StatusOK {
				rep.Status = StatusDegraded
			}
		})
	}
	wg.Wait()
	return rep
}

// ServeHTTP answers 200 with the report, or 503 when a required check is
// down.
func (d *Deep) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := d.Check(r.Context())
	status := http.StatusOK
	if rep.Status == StatusDown {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, status, rep)
}

// Postgres checks a round trip on pool and reports its latency.
func Postgres(pool *pgxpool.Pool) func(context.Context) Result {
	return func(ctx context.Context) Result {
		start := time.Now()
		var one int
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return Result{Status: StatusDown, Detail: "no round trip to PostgreSQL: " + errText(ctx, err)}
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		return Result{Status: StatusOK, Data: map[string]any{"latency_ms": ms}}
	}
}

// Pool reports pool usage: degraded when every connection is in use.
func Pool(pool *pgxpool.Pool) func(context.Context) Result {
	return func(context.Context) Result {
		s := pool.Stat()
		res := Result{Status: StatusOK, Data: map[string]any{
			"acquired": s.AcquiredConns(), "idle": s.IdleConns(), "total": s.TotalConns(), "max": s.MaxConns(),
			"empty_acquires_total": s.EmptyAcquireCount(),
		}}
		if s.MaxConns() > 0 && s.AcquiredConns() >= s.MaxConns() {
			res.Status = StatusDegraded
			res.Detail = "every connection is in use"
		}
		return res
	}
}

// Migrations checks that the database holds at least the migrations this
// process expects, by package: want maps a package to its newest version.
// A database behind (restored from an old backup, or migrated by an older
// binary after this one started) is down; one ahead (a newer instance
// rolled out) is fine.
func Migrations(pool *pgxpool.Pool, want map[string]int) func(context.Context) Result {
	return func(ctx context.Context) Result {
		rows, err := pool.Query(ctx, `SELECT package, max(version) FROM platform.schema_migrations GROUP BY package
			UNION ALL SELECT package, max(version) FROM dealix.schema_migrations GROUP BY package`)
		if err != nil {
			return Result{Status: StatusDown, Detail: "cannot read the migrations tables: " + errText(ctx, err)}
		}
		have := map[string]int{}
		var pkg string
		var version int
		for rows.Next() {
			if err := rows.Scan(&pkg, &version); err != nil {
				rows.Close()
				return Result{Status: StatusDown, Detail: errText(ctx, err)}
			}
			have[pkg] = max(have[pkg], version)
		}
		if err := rows.Err(); err != nil {
			return Result{Status: StatusDown, Detail: errText(ctx, err)}
		}
		versions := map[string]any{}
		var behind []string
		for p, v := range want {
			versions[p] = have[p]
			if have[p] < v {
				behind = append(behind, fmt.Sprintf("%s at %d, want %d", p, have[p], v))
			}
		}
		if len(behind) > 0 {
			return Result{Status: StatusDown, Detail: fmt.Sprintf("migrations behind: %v", behind), Data: map[string]any{"versions": versions}}
		}
		return Result{Status: StatusOK, Data: map[string]any{"versions": versions}}
	}
}

// errText says how a check failed without the error's text: the route is
// public, and driver errors name hosts and roles.
func errText(ctx context.Context, _ error) string {
	if ctx.Err() != nil {
		return "timed out"
	}
	return "failed"
}
