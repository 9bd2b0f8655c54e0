package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/leads"
	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/tenancy"
)

// bareServer is the baseline of a comparison: the server's own create
// handler (decode, validate, the INSERT and, in the same tenant-scoped
// transaction, the lead's scoring job, as the server enqueues it) behind
// the same net/http server, without the middleware: no telemetry, CORS,
// authentication, rate limit or idempotency. The tenant comes from the
// X-Tenant-ID header, unchecked. Loopback only.
type bareServer struct {
	URL  string
	pool *pgxpool.Pool
	hs   *http.Server
	done chan error
}

// startBare serves the bare handler on 127.0.0.1 over databaseURL (the
// app role's URL, so row-level security applies as in the server) with a
// pool of poolSize connections.
func startBare(ctx context.Context, databaseURL string, poolSize int) (*bareServer, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	hosts := []string{cfg.ConnConfig.Host}
	for _, fb := range cfg.ConnConfig.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if h == "" || h[0] == '/' || h == "localhost" {
			continue // a Unix socket, or this machine
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return nil, errors.New("load: the bare handler's database must be on loopback too")
		}
	}
	cfg.MaxConns = int32(poolSize)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, err := dlq.NewClient(pool, dlq.Config{Logger: discard})
	if err != nil {
		pool.Close()
		return nil, err
	}
	lh := &leads.Handlers{DB: pool, Log: discard,
		OnCreated: func(ctx context.Context, tx pgx.Tx, lead leads.Lead) error {
			_, err := scoring.EnqueueTx(ctx, tx, jobs, lead)
			return err
		}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/leads", func(w http.ResponseWriter, r *http.Request) {
		tctx, err := tenancy.WithTenant(r.Context(), r.Header.Get("X-Tenant-ID"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		lh.Create(w, r.WithContext(tctx))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return nil, err
	}
	b := &bareServer{URL: "http://" + ln.Addr().String(), pool: pool, done: make(chan error, 1),
		hs: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { b.done <- b.hs.Serve(ln) }()
	return b, nil
}

func (b *bareServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.hs.Shutdown(ctx)
	<-b.done
	b.pool.Close()
}

// Compare runs opt against the full server and the same run (creates
// only) against the bare handler over bareDatabaseURL, and reports both
// with the ratio of their create rates. With rounds > 1 the time and the
// request budget are split into rounds that alternate the two (full then
// bare, bare then full, ...), so a drift of the machine or the table's
// growth weighs on both alike; each side's rounds are merged. opt.Mix
// should be creates only for a like-for-like ratio.
func Compare(ctx context.Context, opt Options, bareDatabaseURL string, barePool, rounds int) (*Report, error) {
	rounds = max(rounds, 1)
	b, err := startBare(ctx, bareDatabaseURL, barePool)
	if err != nil {
		return nil, err
	}
	defer b.close()
	fullOpt := opt
	fullOpt.Duration = opt.Duration / time.Duration(rounds)
	fullOpt.MaxRequests = max(opt.MaxRequests/rounds, 1)
	bareOpt := fullOpt
	bareOpt.Target, bareOpt.Bare, bareOpt.Label = b.URL, true, "bare handler"
	var full, bare *Report
	for i := range rounds {
		order := []*Options{&fullOpt, &bareOpt}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			rep, err := Run(ctx, *o)
			if err != nil {
				return nil, err
			}
			if o.Bare {
				bare = merge(bare, rep)
			} else {
				full = merge(full, rep)
			}
		}
	}
	full.Bare = bare
	full.Rounds = rounds
	if fc, bc := full.Op(OpCreate), bare.Op(OpCreate); fc != nil && bc != nil && bc.RPS > 0 {
		full.Ratio = fc.RPS / bc.RPS
	}
	return full, nil
}
