package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dealix/platform/internal/pgboot"
)

// provision decides where PostgreSQL comes from and returns the URL of a
// role that may run the migrations, with a function that stops what
// provision started (a no-op for an existing server).
//
// The order is internal/pgboot's, shared with the test helper: DATABASE_URL,
// else Docker (cfg.PostgresImage, pulled only with cfg.PullImage), else
// PostgreSQL's own binaries with a cluster kept in cfg.DataDir (wiped first
// with cfg.ResetData). When none is there, the error wraps ErrInvalidConfig
// so the program exits with status 2 and one message naming the three.
func provision(ctx context.Context, cfg Config, log *slog.Logger) (adminURL string, stop func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	opts := pgboot.ServerEnv.Options()
	opts.URL = cfg.DatabaseURL
	opts.Image = cfg.PostgresImage
	opts.AllowPull = cfg.PullImage
	opts.DataDir = cfg.DataDir
	opts.Reset = cfg.ResetData
	opts.Logger = log
	srv, err := pgboot.Start(ctx, opts)
	switch {
	case errors.Is(err, pgboot.ErrNoServer):
		return "", noop, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	case err != nil:
		return "", noop, fmt.Errorf("database: %w", err)
	}
	log.Info("database: ready", "source", srv.Source, "url", pgboot.Redact(srv.AdminURL))
	return srv.AdminURL, srv.Close, nil
}
