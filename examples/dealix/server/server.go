// Package server is the Dealix reference server: configuration, database
// bootstrap (migrations as the owner, the app and system roles, grants, the
// demo tenant), the middleware chain, the routes and the graceful stop.
// Handlers live in one package per domain (leads, pricing, apikeys,
// health).
//
// The server is built without main, so tests run the real handler:
//
//	srv, err := server.New(ctx, server.Config{DatabaseURL: ownerURL})
//	defer srv.Shutdown(ctx)
//	ts := httptest.NewServer(srv.Handler())
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/telemetry"
	"github.com/dealix/platform/tenancy"
)

// Server is one running instance: its pools, handler and background work.
type Server struct {
	cfg     Config
	db      *databases
	stopDB  func(context.Context) error
	handler http.Handler
	demo    Demo

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	stopping     chan struct{} // closed when Shutdown begins
	stoppingOnce sync.Once
	httpMu       sync.Mutex
	http         *http.Server
	closers      []func() // the services' own resources, released last
	platform     *Platform
	intake       *intake.Service // the intake webhooks' service, for operators and tests
	paymentFake  *billing.Fake   // the local payment provider, when no real one is set
	shutdownOnce sync.Once
	shutdownErr  error
}

// New provisions the database, migrates it, prepares the roles, seeds the
// demo tenant (unless cfg.SkipDemo), builds the handler and starts the
// background work. It does not listen: use Handler, Serve or Run. Call
// Shutdown to release what it holds.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = newLogger(os.Stderr, cfg.LogLevel)
	}
	log := cfg.Logger
	srv := &Server{cfg: cfg, stopping: make(chan struct{})}
	srv.bgCtx, srv.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			srv.bgCancel()
			if srv.db != nil {
				srv.db.close()
			}
			if srv.stopDB != nil {
				_ = srv.stopDB(context.WithoutCancel(ctx))
			}
		}
	}()

	adminURL, stopDB, err := provision(ctx, cfg, log)
	srv.stopDB = stopDB
	if err != nil {
		return nil, err
	}
	if srv.db, err = openDatabases(ctx, cfg, adminURL, log); err != nil {
		return nil, err
	}
	srv.db.owner.Close() // start-up work done; serving never needs the owner
	srv.db.owner = nil

	hmacKey := cfg.JWTHMACKey
	if hmacKey == nil && cfg.JWKSURL == "" {
		hmacKey = make([]byte, 32)
		if _, err := rand.Read(hmacKey); err != nil {
			return nil, err
		}
		log.Warn("auth: no DEALIX_JWT_HMAC_KEY or DEALIX_JWT_JWKS_URL; using a random development key for this process only")
	}
	svc, err := newServices(srv.bgCtx, cfg, srv.db, hmacKey)
	if err != nil {
		return nil, err
	}
	if srv.platform, err = newPlatform(srv.db.app, srv.db.system, log); err != nil {
		return nil, err
	}
	if !cfg.SkipDemo {
		if srv.demo, err = seedDemo(ctx, srv.db.app, svc.keys, cfg, hmacKey); err != nil {
			return nil, err
		}
	}
	srv.handler = srv.routes(svc)
	srv.closers = svc.closers
	// The domains registered their handlers and workflows in routes.
	if err := srv.platform.Start(srv.bgCtx, cfg); err != nil {
		return nil, err
	}
	sweepers := svc.sweepers
	if cfg.NoWorkers {
		sweepers = nil // the instances with workers sweep
	}
	for _, run := range sweepers {
		srv.bg.Go(func() {
			if err := run(srv.bgCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("background work stopped", "error", err)
			}
		})
	}
	return srv, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(telemetry.NewLogHandler(h, tenancy.TenantFrom))
}

// Handler is the server's whole HTTP handler, middleware included.
func (srv *Server) Handler() http.Handler { return srv.handler }

// Platform is the queues, durable runtime and approvals gate the domains
// share.
func (srv *Server) Platform() *Platform { return srv.platform }

// Demo is the demo tenant's credentials (zero when SkipDemo).
func (srv *Server) Demo() Demo { return srv.demo }

// Config is the configuration in effect, defaults filled in.
func (srv *Server) Config() Config { return srv.cfg }

// Serve answers requests on ln until Shutdown; it returns nil after a
// graceful stop.
func (srv *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           srv.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(srv.cfg.Logger.Handler(), slog.LevelWarn),
	}
	srv.httpMu.Lock()
	select {
	case <-srv.stopping:
		srv.httpMu.Unlock()
		return nil
	default:
	}
	srv.http = hs
	srv.httpMu.Unlock()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Run serves on ln until ctx is done, then stops gracefully within
// Config.ShutdownTimeout.
func (srv *Server) Run(ctx context.Context, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		_ = srv.Shutdown(context.WithoutCancel(ctx))
		return err
	case <-ctx.Done():
	}
	srv.cfg.Logger.Info("stopping: draining requests", "timeout", srv.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), srv.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serveErr := <-served; err == nil {
		err = serveErr
	}
	return err
}

// Shutdown stops gracefully: it stops accepting connections, waits for the
// requests in flight, then stops the background work (each loop finishes
// its current step) and closes the pools and the database it started. When
// ctx ends first, the remaining connections are closed and ctx's error is
// returned. It is safe to call more than once.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.shutdownOnce.Do(func() { srv.shutdownErr = srv.shutdown(ctx) })
	return srv.shutdownErr
}

func (srv *Server) shutdown(ctx context.Context) error {
	srv.stoppingOnce.Do(func() { close(srv.stopping) })
	var errs []error
	srv.httpMu.Lock()
	hs := srv.http
	srv.httpMu.Unlock()
	if hs != nil {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain requests: %w", err))
			_ = hs.Close()
		}
	}
	if srv.platform != nil {
		if err := srv.platform.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop background work: %w", err))
		}
	}
	srv.bgCancel()
	done := make(chan struct{})
	go func() { srv.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("stop background work: %w", ctx.Err()))
	}
	for _, closeFn := range srv.closers {
		closeFn()
	}
	srv.db.close()
	if srv.stopDB != nil {
		if err := srv.stopDB(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop database: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run is the program: telemetry, the server on cfg.Addr, the banner on out,
// and a graceful stop when ctx is done (main cancels it on SIGINT and
// SIGTERM). ExitCode turns its error into the exit status.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = newLogger(os.Stderr, cfg.LogLevel)
	}
	tel := telemetry.Init(ctx, telemetry.Config{ServiceName: "dealix", Logger: cfg.Logger})
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	srv, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = srv.Shutdown(context.WithoutCancel(ctx))
		return fmt.Errorf("%w: DEALIX_ADDR %s: %v", ErrInvalidConfig, cfg.Addr, err)
	}
	printBanner(out, "http://"+ln.Addr().String(), srv.Demo())
	err = srv.Run(ctx, ln)
	if err == nil {
		cfg.Logger.Info("stopped")
	}
	return err
}
