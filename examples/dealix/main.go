// Command dealix runs the Dealix reference server: the library's packages
// composed into a multi-tenant sales backend.
//
//	DATABASE_URL=postgres://postgres:secret@127.0.0.1:5432/postgres go run ./examples/dealix
//
// See README.md in this directory for the configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dealix/platform/examples/dealix/server"
)

func main() {
	cfg, err := server.LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dealix: %v\n", err)
		os.Exit(server.ExitCode(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = server.Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dealix: %v\n", err)
	}
	stop()
	os.Exit(server.ExitCode(err))
}
