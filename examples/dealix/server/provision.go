package server

import (
	"context"
	"fmt"
	"log/slog"
)

// provision decides where PostgreSQL comes from and returns the URL of a
// role that may run the migrations, with a function that stops what
// provision started (nil-safe to call; a no-op for an existing server).
//
// Today it serves DATABASE_URL only. It is the one seam for the fallback
// order of the design (DATABASE_URL, else Docker with cfg.PostgresImage and
// cfg.PullImage, else PostgreSQL's own binaries with a cluster in
// cfg.DataDir, wiped first when cfg.ResetData), so that order lives in one
// package shared with the test helper, not here.
func provision(_ context.Context, cfg Config, log *slog.Logger) (adminURL string, stop func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if cfg.DatabaseURL != "" {
		log.Info("database: using DATABASE_URL")
		return cfg.DatabaseURL, noop, nil
	}
	return "", noop, fmt.Errorf("%w: no database: set DATABASE_URL to a PostgreSQL URL of a role that may create schemas "+
		"(a superuser also lets the server create its app and system roles), for example "+
		"DATABASE_URL=postgres://postgres:secret@127.0.0.1:5432/postgres", ErrInvalidConfig)
}
