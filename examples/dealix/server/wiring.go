package server

import (
	"context"
	"net/http"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/health"
	"github.com/dealix/platform/examples/dealix/leads"
	"github.com/dealix/platform/examples/dealix/pricing"
	"github.com/dealix/platform/examples/dealix/reports"
	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/telemetry"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

// services are the library's request-path pieces, built once.
type services struct {
	keys     *tenancy.APIKeys
	auth     *tenancy.Authenticator
	limiter  *ratelimit.Limiter
	idemKey  *idempotency.Middleware // Idempotency-Key required (creates)
	idemOpt  *idempotency.Middleware // Idempotency-Key honoured when sent (updates)
	sweepers []func(context.Context) error
	closers  []func() // run after the background work stops
}

// newServices builds the library's pieces on the server's pools. bg bounds
// the services' own background work (the JWKS refresh).
func newServices(bg context.Context, cfg Config, db *databases, hmacKey []byte) (*services, error) {
	log := cfg.Logger
	s := &services{}
	var err error

	jwtCfg := tenancy.JWTConfig{
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		JWKSURL: cfg.JWKSURL, Algorithms: cfg.JWTAlgorithms, Logger: log,
	}
	if hmacKey != nil {
		jwtCfg.Keys = []tenancy.Key{{ID: DevKeyID, Algorithm: "HS256", Key: hmacKey}}
		if cfg.JWKSURL != "" {
			jwtCfg.Algorithms = append(jwtCfg.Algorithms, "HS256")
		}
	}
	verifier, err := tenancy.NewJWTVerifier(bg, jwtCfg)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, verifier.Close) // ends the JWKS refresh
	if s.keys, err = tenancy.NewAPIKeys(db.app, tenancy.APIKeysConfig{Logger: log, CacheTTL: max(cfg.APIKeyCacheTTL, 0)}); err != nil {
		return nil, err
	}
	if s.auth, err = tenancy.NewAuthenticator(tenancy.AuthConfig{JWT: verifier, APIKeys: s.keys, Logger: log}); err != nil {
		return nil, err
	}
	if s.limiter, err = ratelimit.New(ratelimit.Config{Default: cfg.RateLimit, Logger: log}); err != nil {
		return nil, err
	}
	store, err := idempotency.NewStore(db.app, idempotency.StoreConfig{})
	if err != nil {
		return nil, err
	}
	base := idempotency.Config{Transactional: true, MaxBodyBytes: cfg.MaxBodyBytes, Logger: log}
	required := base
	required.RequireKey = true
	if s.idemKey, err = idempotency.NewMiddleware(store, required); err != nil {
		return nil, err
	}
	if s.idemOpt, err = idempotency.NewMiddleware(store, base); err != nil {
		return nil, err
	}
	sweeper, err := idempotency.NewSweeper(db.system, idempotency.SweeperConfig{Logger: log})
	if err != nil {
		return nil, err
	}
	s.sweepers = append(s.sweepers, sweeper.Run)
	return s, nil
}

// routes builds the server's handler. The chain, outermost first:
//
//	telemetry (trace, correlation id)
//	-> CORS allowlist
//	-> authentication (JWT or API key)        } API routes only
//	-> per-tenant rate limit                  }
//	-> idempotency on writes (transactional)  } lead writes
//	-> handler, in the request's tenant transaction
//
// Public routes (pricing, health) skip authentication but not telemetry
// or CORS.
func (srv *Server) routes(svc *services) http.Handler {
	cfg, db, log := srv.cfg, srv.db, srv.cfg.Logger
	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return authed(apikeys.RequireAdmin(log, h)) }

	lh := &leads.Handlers{DB: db.app, MaxBodyBytes: cfg.MaxBodyBytes, Log: log}
	lh.OnCreated = srv.scoreNewLead
	kh := &apikeys.Handlers{Keys: svc.keys, MaxBodyBytes: cfg.MaxBodyBytes, Log: log}
	deep := &health.Deep{Checks: []health.Check{
		{Name: "postgres", Required: true, Run: health.Postgres(db.app)},
		{Name: "migrations", Required: true, Run: health.Migrations(db.app, db.migrated)},
		{Name: "pool", Run: health.Pool(db.app)},
	}}

	mux := http.NewServeMux()
	// Public.
	mux.HandleFunc("GET /health", health.Live)
	mux.Handle("GET /health/deep", deep)
	mux.Handle("GET /api/v1/pricing/plans", &pricing.Handler{DB: db.app, Log: log})
	if cfg.DebugRoutes {
		mux.HandleFunc("GET /debug/slow", srv.slow)
	}
	// Authenticated, rate limited, tenant-scoped.
	mux.Handle("POST /api/v1/leads", authed(svc.idemKey.Handler(http.HandlerFunc(lh.Create))))
	mux.Handle("GET /api/v1/leads", authed(http.HandlerFunc(lh.List)))
	mux.Handle("GET /api/v1/leads/{id}", authed(http.HandlerFunc(lh.Get)))
	mux.Handle("PATCH /api/v1/leads/{id}", authed(svc.idemOpt.Handler(http.HandlerFunc(lh.Update))))
	// API keys: no idempotency (see package apikeys).
	mux.Handle("POST /api/v1/api-keys", admin(kh.Create))
	mux.Handle("GET /api/v1/api-keys", admin(kh.List))
	mux.Handle("DELETE /api/v1/api-keys/{id}", admin(kh.Revoke))
	mux.Handle("GET /api/v1/reports/weekly", authed(&reports.Handler{DB: db.app, Log: log}))
	srv.mountScoring(mux, svc)
	srv.mountOutbound(mux, svc)
	srv.mountGates(mux, svc)
	srv.mountBilling(mux, svc)
	srv.mountIntake(mux, svc)
	srv.mountAdminDLQ(mux, svc)
	srv.mountDeals(mux, svc)
	srv.mountConsole(mux, svc)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Status(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})

	return telemetry.Middleware(telemetry.WithOperation("dealix"))(cors(cfg.CORSOrigins)(mux))
}
