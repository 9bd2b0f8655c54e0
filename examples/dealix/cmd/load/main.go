// Command load drives a Dealix reference server on this machine with a
// mix of requests across several tenants and credentials, and reports,
// per operation, requests/s, p50, p95, p99, max latency and the answers by
// status: as a table on stdout, as JSON (-json) and as a latency chart
// (-svg). It only ever connects to loopback addresses, and every run is
// bounded in time (-duration) and in requests (-requests).
//
//	DEALIX_JWT_HMAC_KEY=... go run ./examples/dealix/cmd/load \
//	    -target http://127.0.0.1:8080 -rate 100 -duration 60s -svg latency.svg
//
// Credentials: with DEALIX_JWT_HMAC_KEY (the server's, base64) the tool
// mints an HS256 JWT for each of -tenants new tenants and, through it, an
// API key per tenant; -api-keys adds keys of existing tenants.
//
// -rate R runs open loop (R requests/s scheduled, latency measured from
// the scheduled start); without it, -concurrency workers run closed loop
// (saturation). -bare-database-url adds a second run against the bare
// create handler (no middleware) and prints the ratio.
//
// The exit status is 1 when -max-p95 or -max-errors is exceeded, 2 on a
// usage error.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opt       Options
		mix       = fs.String("mix", DefaultMix.String(), "weights of the actions: create, retry, list, get, patch, close")
		hmac      = fs.String("hmac-key", os.Getenv("DEALIX_JWT_HMAC_KEY"), "the server's HS256 key, base64 (default $DEALIX_JWT_HMAC_KEY)")
		apiKeys   = fs.String("api-keys", "", "comma-separated API keys of existing tenants")
		jsonOut   = fs.String("json", "", "write the report as JSON to this file (- for stdout)")
		svgOut    = fs.String("svg", "", "write the latency chart (SVG) to this file")
		bareURL   = fs.String("bare-database-url", "", "also run the creates against the bare handler over this database (the app role's URL) and print the ratio")
		barePool  = fs.Int("bare-pool-size", 20, "the bare handler's pool size (the server's DEALIX_APP_POOL_SIZE)")
		rounds    = fs.Int("rounds", 1, "with -bare-database-url: alternate full stack and bare handler this many times, splitting -duration and -requests")
		maxP95    = fs.Duration("max-p95", 0, "exit 1 when an operation's p95 exceeds this (0: no check)")
		maxErrors = fs.Int("max-errors", -1, "exit 1 when more requests than this fail (-1: no check)")
	)
	fs.StringVar(&opt.Target, "target", "http://127.0.0.1:8080", "the server's base URL (loopback only)")
	fs.DurationVar(&opt.Duration, "duration", 10*time.Second, "how long the run lasts (at most 1h)")
	fs.IntVar(&opt.MaxRequests, "requests", 1_000_000, "the most requests the run sends")
	fs.Float64Var(&opt.Rate, "rate", 0, "target requests/s over all tenants, open loop (0: closed loop)")
	fs.IntVar(&opt.Concurrency, "concurrency", 16, "closed-loop workers, or the open loop's bound of requests in flight")
	fs.IntVar(&opt.Tenants, "tenants", 4, "tenants to mint JWTs for")
	fs.StringVar(&opt.Issuer, "jwt-issuer", "dealix-dev", "iss of the minted JWTs")
	fs.StringVar(&opt.Audience, "jwt-audience", "dealix-api", "aud of the minted JWTs")
	fs.DurationVar(&opt.Timeout, "timeout", 10*time.Second, "bound of each request")
	fs.StringVar(&opt.DealCreateBody, "deal-body", DefaultDealCreateBody, "JSON body of POST /api/v1/deals ({{lead_id}} is replaced)")
	fs.StringVar(&opt.DealCloseBody, "deal-close-body", DefaultDealCloseBody, "JSON body of POST /api/v1/deals/{id}/close")
	fs.IntVar(&opt.Prefill, "prefill", 0, "leads to create per tenant before the run, not measured")
	fs.StringVar(&opt.Label, "label", "", "the run's name in the report")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if opt.Mix, err = ParseMix(*mix); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *hmac != "" {
		if opt.HMACKey, err = base64.StdEncoding.DecodeString(*hmac); err != nil {
			if opt.HMACKey, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(*hmac, "=")); err != nil {
				fmt.Fprintln(stderr, "load: -hmac-key: not base64")
				return 2
			}
		}
	}
	for _, k := range strings.Split(*apiKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			opt.APIKeys = append(opt.APIKeys, k)
		}
	}
	if _, err := checkTarget(opt.Target); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	var rep *Report
	if *bareURL != "" {
		rep, err = Compare(ctx, opt, *bareURL, *barePool, *rounds)
	} else {
		rep, err = Run(ctx, opt)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, ErrNotLoopback) {
			return 2
		}
		return 1
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *jsonOut != "" {
		if err := writeTo(*jsonOut, stdout, rep.WriteJSON); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if *svgOut != "" {
		if err := writeTo(*svgOut, stdout, rep.WriteSVG); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	code := 0
	if *maxP95 > 0 {
		for _, o := range rep.Ops {
			if o.P95 > ms(*maxP95) {
				fmt.Fprintf(stderr, "load: %s p95 %.1f ms exceeds %v\n", o.Op, o.P95, *maxP95)
				code = 1
			}
		}
	}
	if *maxErrors >= 0 && rep.Errors > *maxErrors {
		fmt.Fprintf(stderr, "load: %d errors, more than %d\n", rep.Errors, *maxErrors)
		code = 1
	}
	return code
}

func writeTo(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
