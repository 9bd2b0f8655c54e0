package idempotency

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

type txContextKey struct{}

// TxFrom returns the transaction a Transactional middleware opened for the
// request, scoped to the request's tenant. A handler does its writes in it,
// and must not commit or roll it back: the middleware commits it together
// with the claimed key and the stored response, or rolls all back.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txContextKey{}).(pgx.Tx)
	return tx, ok
}

// serveTx runs next inside one transaction that holds the claim, the
// handler's writes and the stored response. The response is sent only
// after the commit, so a client never sees a success whose effects were
// rolled back.
func (m *Middleware) serveTx(w http.ResponseWriter, r *http.Request, next http.Handler, key string, fp Fingerprint) {
	tenant, _ := tenancy.TenantFrom(r.Context())
	tx, err := beginTenant(r.Context(), m.store.db, tenant)
	if err != nil {
		m.unavailable(w, r, "begin", err)
		return
	}
	// Rolls back on every path but the commit, a panic in next included.
	defer func() {
		ctx, cancel := m.detached(r)
		defer cancel()
		_ = tx.Rollback(ctx)
	}()
	claim, err := m.store.ClaimTx(r.Context(), tx, key, fp)
	if m.answered(w, r, claim, err) {
		return
	}
	rec := newRecorder()
	next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), txContextKey{}, tx)))

	status := rec.statusCode()
	if status >= 500 || (r.Context().Err() != nil && !rec.wrote()) {
		rec.flush(w) // the deferred rollback undoes the handler's writes and the claim
		return
	}
	detached, cancel := m.detached(r)
	defer cancel()
	err = m.store.CompleteTx(detached, tx, key, claim.Token, rec.response(m.headers, m.cfg.MaxResponseBytes))
	if err == nil {
		err = tx.Commit(detached)
	}
	switch {
	case err == nil:
		rec.flush(w)
	case status >= 400:
		// The handler refused the request, and nothing was committed: its
		// answer is still the truth (a handler that caught a database
		// error aborts the transaction, so the commit fails).
		rec.flush(w)
	default:
		m.unavailable(w, r, "commit", err)
	}
}

func (m *Middleware) unavailable(w http.ResponseWriter, r *http.Request, step string, err error) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		m.cfg.Logger.WarnContext(r.Context(), "idempotency: transaction abandoned", "step", step, "error", err)
	} else {
		m.cfg.Logger.ErrorContext(r.Context(), "idempotency: transaction failed", "step", step, "error", err)
	}
	problem.Status(w, http.StatusServiceUnavailable, "the request could not be committed; it had no effect and may be retried")
}
