package intake

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/webhooksig"
)

// ReplayTTL is how long a delivered webhook is remembered by the replay
// store: longer than any provider's retry period.
const ReplayTTL = 72 * time.Hour

// Accepted is the body of a webhook's 200 answer.
type Accepted struct {
	// Status is "accepted" (the delivery is new; its jobs were enqueued),
	// "duplicate" (the delivery was received before; nothing enqueued) or
	// "ignored" (nothing in it concerns the server).
	Status string `json:"status"`
	// Jobs are the ids of the jobs enqueued (not those whose dedup key
	// an earlier job holds).
	Jobs []int64 `json:"jobs,omitempty"`
}

// Ingest claims the verified delivery d and enqueues params in one
// transaction scoped to ctx's tenant, on the app role: the claim and the
// jobs commit together or not at all, so a delivery is enqueued exactly
// once however often the provider sends it (a re-signed copy, with a new
// delivery id, is caught by the jobs' dedup keys while the first jobs are
// kept), and a failed enqueue leaves
// the delivery free for the provider's retry. A delivery claimed before
// enqueues nothing and answers "duplicate"; one that another request holds
// under a live lease returns how long to wait (answer 409 with
// Retry-After). The replay key is (d.Verifier, d.ID): name the verifier
// per tenant where the route knows the tenant.
func Ingest(ctx context.Context, db tenancy.Beginner, jobs *dlq.Client, replay *webhooksig.ReplayStore,
	d webhooksig.Delivery, params ...dlq.JobParams) (Accepted, time.Duration, error) {
	var out Accepted
	var retryAfter time.Duration
	err := tenancy.InTx(ctx, db, func(tx pgx.Tx) error {
		out, retryAfter = Accepted{}, 0 // the function may run again
		claim, err := replay.ClaimTx(ctx, tx, d.Verifier, d.ID, ReplayTTL)
		if err != nil {
			return err
		}
		switch claim.Status {
		case webhooksig.ClaimCompleted:
			out.Status = "duplicate"
			return nil
		case webhooksig.ClaimInProgress:
			retryAfter = cmp.Or(claim.RetryAfter, time.Second)
			return nil
		}
		out.Status = "accepted"
		if len(params) == 0 {
			out.Status = "ignored"
			return nil
		}
		res, err := jobs.EnqueueManyTx(ctx, tx, params)
		if errors.Is(err, dlq.ErrInvalidJob) {
			// A verified event PostgreSQL cannot store (a NUL character):
			// the sender's retries would fail the same way.
			return httpx.Errorf(http.StatusBadRequest, "the event holds a value that cannot be stored")
		}
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.Duplicate {
				out.Jobs = append(out.Jobs, r.ID)
			}
		}
		if len(out.Jobs) == 0 {
			// Every job's dedup key was taken: the sender re-signed a
			// delivery it had made before (HubSpot signs each retry anew).
			out.Status = "duplicate"
		}
		return nil
	})
	return out, retryAfter, err
}

// SignedURL returns the function webhooksig.Config.URL needs: the URL the
// sender addressed, which HubSpot signs. With publicURL (the server's
// address as the sender sees it, such as https://api.example.com) it is
// publicURL + the request URI; without, the scheme of the connection
// (http, or https over TLS), the Host header and the request URI, which is
// right for a server reached directly.
func SignedURL(publicURL string) func(*http.Request) string {
	publicURL = strings.TrimRight(publicURL, "/")
	return func(r *http.Request) string {
		uri := r.RequestURI
		if !strings.HasPrefix(uri, "/") {
			// Empty (a request built in-process) or in absolute form
			// (RFC 9112 section 3.2.2): the path and query as sent.
			uri = r.URL.RequestURI()
		}
		if publicURL != "" {
			return publicURL + uri
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + r.Host + uri
	}
}

// respond writes Ingest's outcome.
func respond(w http.ResponseWriter, r *http.Request, log interface {
	ErrorContext(ctx context.Context, msg string, args ...any)
}, out Accepted, retryAfter time.Duration, err error) {
	if err != nil {
		var e *httpx.Error
		if !errors.As(err, &e) {
			log.ErrorContext(r.Context(), "webhook: ingest failed", "path", r.URL.Path, "error", err)
		}
		httpx.Fail(w, r, discard, err)
		return
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", itoa(int(retryAfter/time.Second)))
		httpx.Fail(w, r, discard, httpx.Errorf(http.StatusConflict, "the delivery is being processed; retry later"))
		return
	}
	httpx.JSON(w, http.StatusOK, out)
}
