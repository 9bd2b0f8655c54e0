package pgboot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dealix/platform/internal/pgboot"
)

// A server reads its options from its environment variables, keeps its
// local cluster between runs, and exits with status 2 and the message
// naming the three options when there is no PostgreSQL at all.
func Example() {
	ctx := context.Background()
	opts := pgboot.ServerEnv.Options() // DATABASE_URL, DEALIX_POSTGRES_IMAGE, …
	opts.DataDir = pgboot.DefaultDataDir()
	opts.Logger = slog.Default()
	srv, err := pgboot.Start(ctx, opts)
	if errors.Is(err, pgboot.ErrNoServer) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer srv.Close(ctx)
	fmt.Println("PostgreSQL from", srv.Source, "at", pgboot.Redact(srv.AdminURL))
}
