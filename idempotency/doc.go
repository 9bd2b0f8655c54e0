// Package idempotency makes retried POST, PUT and PATCH requests safe: a
// request carrying an Idempotency-Key header runs once per tenant and key,
// and every retry gets the first response back, as Stripe's API and the
// IETF draft "The Idempotency-Key HTTP Header Field" describe.
//
// # Pieces
//
//   - Store keeps keys in platform.idempotency_keys, scoped to a tenant by
//     row-level security; its primary key is (tenant_id, key), so one
//     tenant's key never meets another's. Claim, Lookup, Renew, Complete
//     and Release work without HTTP, each one round trip, each with a …Tx
//     variant taking the caller's transaction. The methods read the tenant
//     from the context (tenancy.WithTenant) and return ErrNoTenant without
//     one. A …Tx method takes a transaction already scoped to a tenant
//     (tenancy.InTx) and never re-scopes it; a context naming another
//     tenant is refused with a *tenancy.TenantMismatchError and nothing is
//     written. NewStore takes a DB of the app role (*pgxpool.Pool).
//   - Middleware wraps handlers (Handler(http.Handler) http.Handler).
//   - Sweeper deletes expired entries in batches, as the system role:
//     SweepOnce once, Run at an interval. Each batch is one short
//     transaction (SweeperConfig.BatchSize rows, default 1000) that starts
//     at the expiry where the one before ended, so a backlog of a million
//     entries is swept in time linear in its size and never under one
//     long lock. SweeperConfig.BatchPause (default 100ms) waits between
//     two batches, trading sweep time for the requests' throughput while
//     a backlog is worked off.
//   - Migrate creates the table.
//
// ErrNoTenant, ErrInvalidTenant, ErrInvalidConfig and ErrTenantMismatch
// are the library's shared values: errors.Is(err, tenancy.ErrNoTenant)
// matches this package's ErrNoTenant too.
//
// # Usage
//
//	store, err := idempotency.NewStore(appPool, idempotency.StoreConfig{})
//	mw, err := idempotency.NewMiddleware(store, idempotency.Config{})
//	mux.Handle("POST /orders", auth(mw.Handler(createOrder))) // auth puts the tenant in the context
//	sweeper, err := idempotency.NewSweeper(systemPool, idempotency.SweeperConfig{})
//	go sweeper.Run(ctx)
//
// # What a client sees
//
// The key is a bare token (Idempotency-Key: 8e03978e-40d5) or the draft's
// structured-field string (Idempotency-Key: "8e03978e-40d5"): 1 to 255
// printable ASCII characters; see ParseKey. The request is identified by a
// fingerprint, the SHA-256 of its method, path with query, content type
// and body (FingerprintRequest).
//
//   - First request: the key is claimed, the handler runs, its response is
//     stored and returned.
//   - Retry after completion: the stored status, headers (Config.StoredHeaders)
//     and body, byte for byte, with Idempotent-Replayed: true.
//   - Same key while the first request runs: 409 with Retry-After.
//   - Same key, different fingerprint: 422.
//   - Malformed key, or no key where Config.RequireKey: 400. No key
//     otherwise: the request passes through. A request with a key but no
//     tenant: 403 (Config.NoTenant).
//   - A body over Config.MaxBodyBytes: 413. The body is read whole for the
//     fingerprint and handed to the handler intact.
//   - A 5xx from the handler releases the key so a retry runs again, unless
//     Config.StoreServerErrors stores and replays it.
//   - A response body over Config.MaxResponseBytes is sent but not stored;
//     the key is completed without it and a retry gets 409 problem+json
//     with "original_status", so the operation never runs twice.
//
// All errors are application/problem+json (RFC 9457). The handler's
// response is buffered and stored before the client sees it, so a client
// that got a response finds the same one on a retry; streaming responses
// (http.Flusher) are therefore not supported behind the middleware.
//
// # Failures
//
// A claim has a lease (StoreConfig.Lease, default 1 minute), renewed by the
// middleware every Config.LeaseRenewal while the handler runs, so a slow
// handler keeps its key and only a claim whose holder died runs out. Until
// then the key answers 409; after it, a retry with the same fingerprint
// takes it over. A renewal also keeps the entry's expiry at or after the
// lease's end, so a handler that runs longer than the TTL keeps its key:
// neither a request with another fingerprint nor the sweeper takes an
// entry whose holder's lease is live.
//
// A handler that panics releases its claim and the panic goes on unchanged
// to the server's recovery; a client that goes away before the handler
// wrote anything releases it too (a handler that finished despite it has
// its response stored: its side effect happened). These store calls run on
// a context detached from the request's, so a cancelled request cannot
// leave a key stuck.
//
// Every lease and expiry is computed and compared by the database (now()
// in the statement), never by the process's clock, so instances whose
// clocks differ agree on who holds a key. The table's CHECK constraints
// hold the state rules whoever writes: an entry in progress has a holder
// and a lease that ends no later than the entry; a completed entry has its
// response.
//
// # Two modes
//
// By default (claim mode) the claim commits before the handler runs, in
// its own short transaction, and the response is stored in another after
// it. The handler may write anywhere: other databases, queues, payment
// providers. A crash between the handler's side effect and the stored
// response leaves the key in progress until its lease expires, and then a
// retry runs the handler again: make the side effect itself idempotent
// where that matters, or use transactional mode. The two extra commits are
// the price of that independence: each Store call is one round trip (a
// pipelined batch), but a first request costs about twice the round trips
// of the bare handler.
//
// With Config.Transactional the middleware opens one tenant-scoped
// transaction, hands it to the handler (TxFrom), and commits the handler's
// writes together with the stored response; a 5xx or a panic rolls back
// everything. A crash thus leaves neither a side effect without its key nor
// a key without its side effect, and the response is sent only after the
// commit. Use it when the handler's effects are writes to the same
// PostgreSQL database. It is also the fast mode: the BEGIN, the tenant, the
// key's lock and its lookup travel in one round trip, and the response
// travels with the COMMIT in another, so a request costs the round trips
// its handler would spend on a transaction of its own. The claim is a
// transaction-level advisory lock on (tenant, key): concurrent requests
// with the key get 409 at once instead of waiting, and a holder that dies
// frees the key with its connection. A database connection is held for the
// whole request. The middleware owns the transaction: the handler's Commit
// and Rollback return ErrManagedTx (answer 5xx to roll back; tx.Begin
// gives a savepoint as usual), and the transaction is closed to the
// handler once it returns.
package idempotency
