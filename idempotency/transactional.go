package idempotency

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/problem"
)

type txContextKey struct{}

// TxFrom returns the transaction a Transactional middleware opened for the
// request, scoped to the request's tenant. A handler does its writes in it
// (nested transactions, tx.Begin, become savepoints as usual) and must not
// use it after returning. The middleware owns it: it commits it together
// with the stored response, or rolls it all back, and the handler's own
// Commit and Rollback return ErrManagedTx without doing anything.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txContextKey{}).(pgx.Tx)
	return tx, ok
}

// serveTx runs next inside one transaction that holds the claim, the
// handler's writes and the stored response. The response is sent only
// after the commit, so a client never sees a success whose effects were
// rolled back.
func (m *Middleware) serveTx(w http.ResponseWriter, r *http.Request, next http.Handler, key string, fp Fingerprint) {
	rt, claim, err := m.store.beginRequest(r.Context(), key, fp)
	if m.answered(w, r, claim, err) {
		return
	}
	finished := false
	defer func() {
		if !finished { // next panicked: undo its writes; the panic goes on
			m.rollback(r, rt)
		}
	}()
	rec := newRecorder()
	next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), txContextKey{}, pgx.Tx(rt.handlerTx))))
	finished = true

	status := rec.statusCode()
	if status >= 500 || (r.Context().Err() != nil && !rec.wrote()) {
		m.rollback(r, rt) // undoes the handler's writes and frees the key
		rec.flush(w)
		return
	}
	ctx, cancel := m.detached(r)
	defer cancel()
	err = rt.commit(ctx, rec.response(m.headers, m.cfg.MaxResponseBytes))
	switch {
	case err == nil:
		rec.flush(w)
	case errors.Is(err, errKeyTaken):
		// A request with the same key committed first; its answer is the
		// one every retry gets, and this one's writes were rolled back.
		m.answerFromEntry(ctx, w, r, key, fp)
	case errors.Is(err, errTxAborted) && status >= 400:
		// The handler refused the request after a failed statement, and
		// nothing was committed: its answer is still the truth.
		rec.flush(w)
	default:
		m.unavailable(w, r, "commit", err)
	}
}

func (m *Middleware) rollback(r *http.Request, rt *requestTx) {
	ctx, cancel := m.detached(r)
	defer cancel()
	rt.rollback(ctx)
}

// answerFromEntry answers with what the committed entry of key says: a
// replay, a mismatch, or a conflict while it is still being settled.
func (m *Middleware) answerFromEntry(ctx context.Context, w http.ResponseWriter, r *http.Request, key string, fp Fingerprint) {
	entry, err := m.store.Lookup(ctx, key)
	var claim Claim
	switch {
	case errors.Is(err, ErrNotFound):
		err = &InProgressError{} // the winner's entry is not visible yet
	case err == nil:
		claim, err = existingClaim(entry, fp)
	}
	m.answered(w, r, claim, err)
}

func (m *Middleware) unavailable(w http.ResponseWriter, r *http.Request, step string, err error) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		m.cfg.Logger.WarnContext(r.Context(), "idempotency: transaction abandoned", "step", step, "error", err)
	} else {
		m.cfg.Logger.ErrorContext(r.Context(), "idempotency: transaction failed", "step", step, "error", err)
	}
	detail := "the request's outcome could not be confirmed; retry it with the same " + HeaderName
	if errors.Is(err, errTxAborted) {
		detail = "the request could not be committed; it had no effect and may be retried"
	}
	m.setRetryAfter(w)
	problem.Status(w, http.StatusServiceUnavailable, detail)
}
