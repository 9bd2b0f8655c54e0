package scoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/leads"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/telemetry"
	"github.com/dealix/platform/tenancy"
)

// Queue is the queue scoring and cost-alert jobs wait in.
const Queue = "scoring"

// Job kinds on Queue.
const (
	KindScore = "lead.score" // score one lead (ScoreJob)
	KindAlert = "cost.alert" // post one daily cost alert (AlertJob)
)

// PurposeLeadScore is the ledger's purpose of a lead's scoring call.
const PurposeLeadScore = "lead-score"

// ErrNoTenant is the library's shared value: the same in every package.
var ErrNoTenant = errs.ErrNoTenant

// DB begins transactions: the app role's pool, bound by row-level
// security.
type DB = tenancy.Beginner

// ScoreJob is the payload of a KindScore job.
type ScoreJob struct {
	LeadID string `json:"lead_id"`
	// CorrelationID is the creating request's, written to the ledger.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// AlertJob is the payload of a KindAlert job.
type AlertJob struct {
	Day string `json:"day"` // YYYY-MM-DD, UTC
}

// EnqueueTx enqueues the scoring of a new lead in tx, the transaction
// that creates it: the job exists only if the lead does. The correlation
// id of ctx (the request's) travels with the job to the ledger. A lead is
// scored once however often this is called for it (the job's dedup key).
// tx must already be scoped to a tenant; it is never re-scoped, and a
// context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func EnqueueTx(ctx context.Context, tx pgx.Tx, jobs *dlq.Client, lead leads.Lead) (dlq.Inserted, error) {
	return jobs.EnqueueTx(ctx, tx, dlq.JobParams{
		Queue:    Queue,
		Kind:     KindScore,
		Payload:  ScoreJob{LeadID: lead.ID, CorrelationID: telemetry.CorrelationID(ctx)},
		DedupKey: "lead:" + lead.ID,
	})
}

// Service scores leads, keeps the cost ledger and posts the daily cost
// alerts. Its job handlers run on Queue; Costs serves the report.
type Service struct {
	db   DB
	jobs *dlq.Client
	cfg  Config
}

// New builds the service on the app role's pool; jobs enqueues the alert
// jobs (the app role's client).
func New(db DB, jobs *dlq.Client, cfg Config) (*Service, error) {
	if db == nil || jobs == nil {
		return nil, errs.Config("scoring", "a database and a jobs client are required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Service{db: db, jobs: jobs, cfg: cfg}, nil
}

// ScoreHandler works KindScore jobs. The ctx the worker hands it carries
// the job's tenant.
func (s *Service) ScoreHandler() dlq.Handler { return dlq.Typed(s.score) }

// AlertHandler works KindAlert jobs.
func (s *Service) AlertHandler() dlq.Handler { return dlq.Typed(s.alert) }

// score scores one lead. The model is called outside any transaction (it
// may be slow); the ledger row, the cached answer, the lead's score, the
// day's spend and, when it passes the threshold, the day's alert and its
// post job then commit together. The ledger row's key is the job's id, so
// an attempt that runs again after its effects committed (a worker that
// died before completing the job) records nothing twice and calls no model.
func (s *Service) score(ctx context.Context, job *dlq.Job, p ScoreJob) error {
	tenant, ok := tenancy.TenantFrom(ctx)
	if !ok {
		return dlq.Discard(ErrNoTenant)
	}
	if p.CorrelationID != "" && telemetry.ValidCorrelationID(p.CorrelationID) {
		ctx = telemetry.WithCorrelationID(ctx, p.CorrelationID)
	} else {
		p.CorrelationID = ""
	}
	model := s.cfg.Model.Name()
	callKey := "job:" + strconv.FormatInt(job.ID, 10)

	var (
		in     Input
		hash   string
		done   bool
		res    Result
		cached bool
	)
	err := tenancy.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM dealix.model_calls WHERE tenant_id = $1 AND call_key = $2)`, tenant, callKey).Scan(&done); err != nil || done {
			return err
		}
		var email, company, source, notes *string
		err := tx.QueryRow(ctx, `SELECT name, email, company, source, notes FROM dealix.leads WHERE tenant_id = $1 AND id = $2`, tenant, p.LeadID).
			Scan(&in.Name, &email, &company, &source, &notes)
		if errors.Is(err, pgx.ErrNoRows) {
			return dlq.Discard(fmt.Errorf("scoring: lead %s does not exist", p.LeadID))
		}
		if err != nil {
			return err
		}
		in.Email, in.Company, in.Source, in.Notes = deref(email), deref(company), deref(source), deref(notes)
		hash = in.Hash(model)
		var raw []byte
		err = tx.QueryRow(ctx, `SELECT response FROM dealix.model_cache WHERE tenant_id = $3 AND model = $1 AND input_hash = $2`, model, hash, tenant).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if json.Unmarshal(raw, &res) == nil && res.validate() == nil {
			cached = true
		}
		return nil
	})
	if err != nil || done {
		return err
	}
	if !cached {
		if res, err = s.cfg.Model.Score(ctx, in); err != nil {
			return fmt.Errorf("scoring: model %s: %w", model, err)
		}
		if err := res.validate(); err != nil {
			return err
		}
	}
	price := s.cfg.Prices[model]
	tokensIn, tokensOut := res.TokensIn, res.TokensOut
	if cached {
		// No call reached the model: nothing billed.
		tokensIn, tokensOut = 0, 0
	}
	var alertDay string
	err = tenancy.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if !cached {
			response, _ := json.Marshal(res)
			if _, err := tx.Exec(ctx, `INSERT INTO dealix.model_cache (tenant_id, model, input_hash, response)
				VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, tenant, model, hash, response); err != nil {
				return err
			}
		}
		var cost string
		err := tx.QueryRow(ctx, `INSERT INTO dealix.model_calls
			(tenant_id, model, purpose, tokens_in, tokens_out, cost_usd, cache_hit, correlation_id, call_key, lead_id)
			VALUES ($1, $2, $3, $4::int4, $5::int4, round(($4::int4 * $6::numeric + $5::int4 * $7::numeric) / 1000, 8),
			        $8, nullif($9, ''), $10, $11)
			ON CONFLICT (tenant_id, call_key) DO NOTHING
			RETURNING cost_usd::text`,
			tenant, model, PurposeLeadScore, tokensIn, tokensOut, price.In, price.Out, cached, p.CorrelationID, callKey, p.LeadID).Scan(&cost)
		if errors.Is(err, pgx.ErrNoRows) {
			return errAlreadyRecorded // another claim of this job got there first
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dealix.lead_scores (tenant_id, lead_id, score, reason, model, cache_hit, correlation_id)
			VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''))
			ON CONFLICT (tenant_id, lead_id) DO UPDATE SET score = excluded.score, reason = excluded.reason,
				model = excluded.model, cache_hit = excluded.cache_hit, correlation_id = excluded.correlation_id, scored_at = now()`,
			tenant, p.LeadID, res.Score, pgtext.Clean(res.Reason, 2000), model, cached, p.CorrelationID); err != nil {
			return err
		}
		alertDay, err = s.addSpend(ctx, tx, tenant, cost)
		return err
	})
	if errors.Is(err, errAlreadyRecorded) {
		return nil
	}
	if err != nil {
		return err
	}
	if alertDay != "" {
		s.cfg.Logger.WarnContext(ctx, "scoring: a tenant's model spend passed the daily alert threshold",
			"day", alertDay, "threshold_usd", s.cfg.AlertUSD)
	}
	return nil
}

// addSpend adds cost to the tenant's spend of the day (the database's UTC
// day, the ledger row's) and, when the total passes the threshold, records
// the day's alert and enqueues its post, all in tx. It returns the day
// when it recorded the alert.
//
// The upsert of the day's row locks it until tx ends, so the ledger writes
// of one tenant and day are serialised and each sees the total of those
// before it: the write that passes the threshold always sees it passed,
// however many workers write at once. The alert's key (tenant, day) makes
// every later write find it already there, so one alert exists per tenant
// and day, and its post job exists only if it does (same transaction).
func (s *Service) addSpend(ctx context.Context, tx pgx.Tx, tenant, cost string) (string, error) {
	var day string
	var over bool
	err := tx.QueryRow(ctx, `INSERT INTO dealix.cost_daily (tenant_id, day, spend_usd)
		VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2::numeric)
		ON CONFLICT (tenant_id, day) DO UPDATE SET spend_usd = cost_daily.spend_usd + excluded.spend_usd
		RETURNING day::text, spend_usd > $3::numeric`, tenant, cost, s.cfg.AlertUSD).Scan(&day, &over)
	if err != nil || !over {
		return "", err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO dealix.cost_alerts (tenant_id, day, spend_usd, threshold_usd)
		SELECT tenant_id, day, spend_usd, $2::numeric FROM dealix.cost_daily WHERE tenant_id = $1 AND day = $3::date
		ON CONFLICT (tenant_id, day) DO NOTHING`, tenant, s.cfg.AlertUSD, day)
	if err != nil || tag.RowsAffected() == 0 {
		return "", err
	}
	if s.cfg.AlertURL != "" {
		if _, err := s.jobs.EnqueueTx(ctx, tx, dlq.JobParams{
			Queue: Queue, Kind: KindAlert, Payload: AlertJob{Day: day}, DedupKey: "cost-alert:" + day,
		}); err != nil {
			return "", err
		}
	}
	return day, nil
}

// alert posts the day's alert. The alert's row stays locked from the check
// that it is unsent to the commit of sent_at, so two claims of the job
// never both post; a job run again after sent_at committed posts nothing.
// The one window left is a receiver that accepted the post and a commit
// that then failed: the retry posts again, with the same X-Dealix-Alert-ID
// header for a receiver that deduplicates.
func (s *Service) alert(ctx context.Context, job *dlq.Job, p AlertJob) error {
	tenant, ok := tenancy.TenantFrom(ctx)
	if !ok {
		return dlq.Discard(ErrNoTenant)
	}
	if s.cfg.AlertURL == "" {
		return nil // alerts turned off since the job was enqueued
	}
	return tenancy.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var spend, threshold string
		var sent bool
		err := tx.QueryRow(ctx, `SELECT spend_usd::text, threshold_usd::text, sent_at IS NOT NULL
			FROM dealix.cost_alerts WHERE tenant_id = $2 AND day = $1::date FOR UPDATE`, p.Day, tenant).Scan(&spend, &threshold, &sent)
		if errors.Is(err, pgx.ErrNoRows) {
			return dlq.Discard(fmt.Errorf("scoring: no cost alert for %s", p.Day))
		}
		if err != nil || sent {
			return err
		}
		text := fmt.Sprintf("Dealix cost alert: tenant %s spent $%s on model calls on %s (UTC), above the daily threshold of $%s.",
			tenant, trimZeros(spend), p.Day, trimZeros(threshold))
		if err := s.post(ctx, tenant+"/"+p.Day, text); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE dealix.cost_alerts SET sent_at = now() WHERE tenant_id = $2 AND day = $1::date`, p.Day, tenant)
		return err
	})
}

// post sends {"text": text} to the alert URL; anything but a 2xx fails.
func (s *Service) post(ctx context.Context, id, text string) error {
	body, _ := json.Marshal(map[string]string{"text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.AlertURL, bytes.NewReader(body))
	if err != nil {
		return dlq.Discard(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Dealix-Alert-ID", id)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("scoring: post the cost alert: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("scoring: post the cost alert: the receiver answered %s", resp.Status)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
