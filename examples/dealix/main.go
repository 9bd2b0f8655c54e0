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
	"strings"
	"syscall"

	"github.com/dealix/platform/examples/dealix/server"
)

func main() {
	cfg, err := server.LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = server.Run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fail(err)
	}
}

// fail reports err and exits: status 2 for a configuration error, 1
// otherwise.
func fail(err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "dealix") {
		msg = "dealix: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(server.ExitCode(err))
}
