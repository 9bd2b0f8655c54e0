package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/tenancy"
)

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// render writes a page in the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	c.renderTemplate(w, r, status, name, "layout.html", data)
}

// partial writes one block of a page (for htmx's polling).
func (c *Console) partial(w http.ResponseWriter, r *http.Request, name, block string, data map[string]any) {
	c.renderTemplate(w, r, http.StatusOK, name, block, data)
}

func (c *Console) renderTemplate(w http.ResponseWriter, r *http.Request, status int, name, block string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["Page"] = name
	if p := principal(r); p.Subject != "" {
		data["Who"] = p.Subject
		data["Tenant"] = p.TenantID
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, block, data); err != nil {
		c.cfg.Log.Error("console: render", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

// failErr logs an unexpected error and answers 500 (or 503 when the
// request's context ended).
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		c.fail(w, r, http.StatusServiceUnavailable, "The request took too long.")
		return
	}
	c.cfg.Log.ErrorContext(r.Context(), "console", "path", r.URL.Path, "error", err)
	c.fail(w, r, http.StatusInternalServerError, "Something went wrong; it was logged.")
}

// overviewData is what the overview shows and polls.
type overviewData struct {
	Queues           []dlq.QueueStats
	Depth, Dead      int64
	RunsInFlight     int
	RunsMore         bool
	ApprovalsWaiting int
	ApprovalsMore    bool
	Today            scoring.Usage
	TodayOK          bool
}

// overviewCountLimit bounds what the overview counts on each poll; beyond
// it the count shows as "100+".
const overviewCountLimit = 100

func (c *Console) overviewData(r *http.Request) (overviewData, error) {
	var d overviewData
	var err error
	if d.Queues, err = c.queueStats(r.Context()); err != nil {
		return d, err
	}
	for _, q := range d.Queues {
		d.Depth += q.Available + q.Running + q.Scheduled + q.Retrying
		d.Dead += q.Dead
	}
	runs, err := c.cfg.Runtime.List(r.Context(), durable.ListOptions{Limit: overviewCountLimit})
	if err != nil {
		return d, err
	}
	d.RunsInFlight, d.RunsMore = len(runs.Runs), runs.Next != ""
	pending, err := c.cfg.Approvals.List(r.Context(), approvals.ListOptions{Status: approvals.StatusPending, Limit: overviewCountLimit})
	if err != nil {
		return d, err
	}
	d.ApprovalsWaiting, d.ApprovalsMore = len(pending.Requests), pending.Next != ""
	if c.cfg.Costs != nil {
		// The report's default window ends with today (UTC) on the
		// database's clock.
		if rep, err := c.costReport(r, ""); err == nil {
			today := rep.To.UTC().AddDate(0, 0, -1).Format(time.DateOnly)
			d.Today, d.TodayOK = scoring.Usage{CostUSD: "0"}, true
			for _, day := range rep.ByDay {
				if day.Day == today {
					d.Today = day.Usage
				}
			}
		} else {
			c.cfg.Log.WarnContext(r.Context(), "console: today's spend", "error", err)
		}
	}
	return d, nil
}

// queueStats is the tenant's stats of every configured queue, in order,
// zeros for a queue without jobs.
func (c *Console) queueStats(ctx context.Context) ([]dlq.QueueStats, error) {
	stats, err := c.cfg.Jobs.Stats(ctx)
	if err != nil {
		return nil, err
	}
	by := map[string]dlq.QueueStats{}
	for _, s := range stats {
		by[s.Queue] = s
	}
	out := make([]dlq.QueueStats, 0, len(c.cfg.Queues))
	for _, q := range c.cfg.Queues {
		s := by[q]
		s.Queue = q
		out = append(out, s)
		delete(by, q)
	}
	for _, s := range stats {
		if _, extra := by[s.Queue]; extra {
			out = append(out, s)
		}
	}
	return out, nil
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	d, err := c.overviewData(r)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data := map[string]any{"O": d}
	if c.cfg.Gates != nil {
		if rep, err := c.cfg.Gates(r, false); err == nil && rep != nil {
			data["Score"] = rep.ScoreLine()
		}
	}
	c.render(w, r, http.StatusOK, "overview", data)
}

func (c *Console) overviewPartial(w http.ResponseWriter, r *http.Request) {
	d, err := c.overviewData(r)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.partial(w, r, "overview", "counts", map[string]any{"O": d})
}

// --- approvals ---

var statuses = []approvals.Status{approvals.StatusPending, approvals.StatusApproved, approvals.StatusRejected, approvals.StatusExpired}

func (c *Console) approvalsData(r *http.Request) (map[string]any, error) {
	status := approvals.Status(r.URL.Query().Get("status"))
	if status == "" {
		status = approvals.StatusPending
	}
	if !status.Valid() {
		return nil, errBadRequest
	}
	page, err := c.cfg.Approvals.List(r.Context(), approvals.ListOptions{Status: status, Limit: 100, Cursor: r.URL.Query().Get("cursor")})
	if errors.Is(err, approvals.ErrInvalidListOptions) {
		return nil, errBadRequest
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"Status": string(status), "Statuses": statuses, "Requests": page.Requests, "Next": page.Next}, nil
}

var errBadRequest = errors.New("bad request")

func (c *Console) approvalsList(w http.ResponseWriter, r *http.Request) {
	d, err := c.approvalsData(r)
	if errors.Is(err, errBadRequest) {
		c.fail(w, r, http.StatusBadRequest, "Unknown status or cursor.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "approvals", d)
}

func (c *Console) approvalsPartial(w http.ResponseWriter, r *http.Request) {
	d, err := c.approvalsData(r)
	if errors.Is(err, errBadRequest) {
		c.fail(w, r, http.StatusBadRequest, "Unknown status or cursor.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.partial(w, r, "approvals", "list", d)
}

func (c *Console) approvalPage(w http.ResponseWriter, r *http.Request, status int, extra map[string]any) {
	id := r.PathValue("id")
	req, err := c.cfg.Approvals.Get(r.Context(), id)
	if errors.Is(err, approvals.ErrNotFound) || errors.Is(err, approvals.ErrInvalidID) {
		c.fail(w, r, http.StatusNotFound, "No such approval request.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	trail, err := c.cfg.Approvals.AuditTrail(r.Context(), id)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	payload, _ := indentJSON(req.Payload)
	d := map[string]any{"R": req, "Audit": trail, "Payload": payload}
	for k, v := range extra {
		d[k] = v
	}
	c.render(w, r, status, "approval", d)
}

func (c *Console) approvalDetail(w http.ResponseWriter, r *http.Request) {
	c.approvalPage(w, r, http.StatusOK, nil)
}

// approvalDecide decides through approvals.Service.Decide, as the admin
// API does: the same audit trail, the first decision wins.
func (c *Console) approvalDecide(w http.ResponseWriter, r *http.Request) {
	var decision approvals.Status
	switch r.PostFormValue("decision") {
	case "approve":
		decision = approvals.StatusApproved
	case "reject":
		decision = approvals.StatusRejected
	default:
		c.fail(w, r, http.StatusBadRequest, "Choose approve or reject.")
		return
	}
	d, err := c.cfg.Approvals.Decide(r.Context(), approvals.DecideInput{
		RequestID: r.PathValue("id"), Decision: decision, Decider: principal(r).Subject, Comment: r.PostFormValue("comment"),
	})
	var conflict *approvals.ConflictError
	switch {
	case err == nil && d.Replayed:
		c.approvalPage(w, r, http.StatusOK, map[string]any{"Notice": "Already " + string(d.Status) + " — nothing more was done."})
	case err == nil:
		c.approvalPage(w, r, http.StatusOK, map[string]any{"Notice": "Request " + string(d.Status) + "."})
	case errors.As(err, &conflict):
		c.approvalPage(w, r, http.StatusConflict, map[string]any{"Problem": fmt.Sprintf(
			"Already decided: the request was %s by %s first, and the first decision stands.", conflict.Recorded.Status, conflict.Recorded.DecidedBy)})
	case errors.Is(err, approvals.ErrExpired):
		c.approvalPage(w, r, http.StatusConflict, map[string]any{"Problem": "The request expired before a decision."})
	case errors.Is(err, approvals.ErrSelfApproval):
		c.approvalPage(w, r, http.StatusForbidden, map[string]any{"Problem": "A requester cannot approve their own request."})
	case errors.Is(err, approvals.ErrInvalidDecision):
		c.approvalPage(w, r, http.StatusBadRequest, map[string]any{"Problem": fmt.Sprintf("The reason must be at most %d bytes.", approvals.MaxCommentLength)})
	case errors.Is(err, approvals.ErrNotFound), errors.Is(err, approvals.ErrInvalidID):
		c.fail(w, r, http.StatusNotFound, "No such approval request.")
	default:
		c.failErr(w, r, err)
	}
}

// --- queues ---

func (c *Console) queues(w http.ResponseWriter, r *http.Request) {
	stats, err := c.queueStats(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "queues", map[string]any{"Queues": stats, "Notice": r.URL.Query().Get("notice")})
}

func (c *Console) queuesPartial(w http.ResponseWriter, r *http.Request) {
	stats, err := c.queueStats(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.partial(w, r, "queues", "table", map[string]any{"Queues": stats})
}

// deadJob is one row of a queue's dead-letter list.
type deadJob struct {
	ID          int64
	Kind        string
	Attempt     int
	MaxAttempts int
	DeadAt      time.Time
	LastError   string
}

// maxDeadListed bounds the dead jobs a queue page lists.
const maxDeadListed = 200

func (c *Console) queueDead(w http.ResponseWriter, r *http.Request) {
	queue := r.PathValue("queue")
	var jobs []deadJob
	err := tenancy.InTx(r.Context(), c.cfg.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), `SELECT id, kind, attempt, max_attempts, coalesce(finalized_at, run_at),
			left(coalesce(errors -> -1 ->> 'error', ''), 300)
			FROM platform.dlq_jobs WHERE queue = $1 AND state = 'dead' ORDER BY finalized_at DESC NULLS LAST, id DESC LIMIT $2`,
			queue, maxDeadListed)
		if err != nil {
			return err
		}
		jobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (deadJob, error) {
			var j deadJob
			err := row.Scan(&j.ID, &j.Kind, &j.Attempt, &j.MaxAttempts, &j.DeadAt, &j.LastError)
			return j, err
		})
		return err
	})
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	stats, err := c.queueStats(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	var st dlq.QueueStats
	for _, s := range stats {
		if s.Queue == queue {
			st = s
		}
	}
	st.Queue = queue
	c.render(w, r, http.StatusOK, "queue", map[string]any{"Q": st, "Jobs": jobs, "Notice": r.URL.Query().Get("notice")})
}

func (c *Console) queueRedrive(w http.ResponseWriter, r *http.Request) {
	queue := r.PathValue("queue")
	n, err := c.cfg.Jobs.RedriveWhere(r.Context(), dlq.Filter{Queue: queue})
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"queues/"+queue+"?notice="+strconv.FormatInt(n, 10)+"+dead+jobs+re-driven", http.StatusSeeOther)
}

func (c *Console) jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.fail(w, r, http.StatusNotFound, "No such job.")
		return 0, false
	}
	return id, true
}

func (c *Console) job(w http.ResponseWriter, r *http.Request) {
	id, ok := c.jobID(w, r)
	if !ok {
		return
	}
	info, err := c.cfg.Jobs.GetJob(r.Context(), id)
	if errors.Is(err, dlq.ErrJobNotFound) {
		c.fail(w, r, http.StatusNotFound, "No such job.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	payload, _ := indentJSON(info.Payload)
	c.render(w, r, http.StatusOK, "job", map[string]any{"J": info, "State": string(info.State), "Payload": payload, "Notice": r.URL.Query().Get("notice")})
}

func (c *Console) jobRedrive(w http.ResponseWriter, r *http.Request) {
	id, ok := c.jobID(w, r)
	if !ok {
		return
	}
	err := c.cfg.Jobs.Redrive(r.Context(), id)
	switch {
	case errors.Is(err, dlq.ErrJobNotFound):
		c.fail(w, r, http.StatusNotFound, "No such job.")
	case errors.Is(err, dlq.ErrNotDead):
		http.Redirect(w, r, fmt.Sprintf("%sjobs/%d?notice=not+dead:+nothing+to+re-drive", Prefix, id), http.StatusSeeOther)
	case err != nil:
		c.failErr(w, r, err)
	default:
		http.Redirect(w, r, fmt.Sprintf("%sjobs/%d?notice=re-driven", Prefix, id), http.StatusSeeOther)
	}
}

// --- durable runs ---

func (c *Console) runs(w http.ResponseWriter, r *http.Request) {
	page, err := c.cfg.Runtime.List(r.Context(), durable.ListOptions{Limit: 200, After: r.URL.Query().Get("after")})
	if errors.Is(err, durable.ErrInvalidCursor) {
		c.fail(w, r, http.StatusBadRequest, "Malformed cursor.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "runs", map[string]any{"Runs": page.Runs, "Next": page.Next})
}

// stepView is a step with its duration since the previous checkpoint.
type stepView struct {
	durable.StepRecord
	Took time.Duration
}

func (c *Console) run(w http.ResponseWriter, r *http.Request) {
	c.runPage(w, r, http.StatusOK, "")
}

func (c *Console) runPage(w http.ResponseWriter, r *http.Request, status int, notice string) {
	id := r.PathValue("id")
	run, err := c.cfg.Runtime.Get(r.Context(), id)
	if errors.Is(err, durable.ErrRunNotFound) {
		c.fail(w, r, http.StatusNotFound, "No such run.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	steps, err := c.cfg.Runtime.Steps(r.Context(), id)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	views := make([]stepView, len(steps))
	prev := run.CreatedAt
	for i, s := range steps {
		views[i] = stepView{StepRecord: s, Took: s.CreatedAt.Sub(prev).Round(time.Millisecond)}
		prev = s.CreatedAt
	}
	final := run.Status == durable.StatusCompleted || run.Status == durable.StatusFailed || run.Status == durable.StatusCancelled
	c.render(w, r, status, "run", map[string]any{"R": run, "Status": string(run.Status), "Steps": views, "Final": final, "Notice": notice})
}

func (c *Console) runCancel(w http.ResponseWriter, r *http.Request) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		reason = "cancelled from the admin console by " + principal(r).Subject
	}
	err := c.cfg.Runtime.Cancel(r.Context(), r.PathValue("id"), reason)
	switch {
	case errors.Is(err, durable.ErrRunNotFound):
		c.fail(w, r, http.StatusNotFound, "No such run.")
	case errors.Is(err, durable.ErrRunFinished):
		c.runPage(w, r, http.StatusConflict, "The run had already finished.")
	case err != nil:
		c.failErr(w, r, err)
	default:
		c.runPage(w, r, http.StatusOK, "Run cancelled.")
	}
}

// --- costs ---

// recorder captures the cost handler's answer.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.h }
func (rec *recorder) WriteHeader(s int) {
	if rec.status == 0 {
		rec.status = s
	}
}
func (rec *recorder) Write(b []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.body.Write(b)
}

// costReport runs GET /admin/costs's handler for the admin's tenant: the
// console shows the very numbers the API answers.
func (c *Console) costReport(r *http.Request, query string) (scoring.Report, error) {
	var rep scoring.Report
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/admin/costs?"+query, nil)
	if err != nil {
		return rep, err
	}
	rec := &recorder{h: http.Header{}}
	c.cfg.Costs.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		return rep, fmt.Errorf("cost report: status %d: %s", rec.status, strings.TrimSpace(rec.body.String()))
	}
	err = json.Unmarshal(rec.body.Bytes(), &rep)
	return rep, err
}

// chartData is the costs chart's series, read by console.js.
type chartData struct {
	Days   []int64              `json:"days"` // UTC midnights, Unix seconds
	Models []string             `json:"models"`
	Series map[string][]float64 `json:"series"` // model → spend per day
	Total  []float64            `json:"total"`
}

func (c *Console) costs(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Costs == nil {
		c.fail(w, r, http.StatusNotFound, "The cost report is not available on this server.")
		return
	}
	q, window := r.URL.Query(), url.Values{}
	for _, name := range []string{"from", "to"} {
		if v := q.Get(name); v != "" {
			window.Set(name, v)
		}
	}
	rep, err := c.costReport(r, window.Encode())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "The cost report was refused: "+err.Error())
		return
	}
	cd := chartData{Models: []string{}, Series: map[string][]float64{}, Days: []int64{}, Total: []float64{}}
	for _, m := range rep.ByModel {
		cd.Models = append(cd.Models, m.Model)
	}
	// Every day of the window, zero where nothing was spent.
	byDay := map[string]scoring.DayUsage{}
	for _, d := range rep.ByDay {
		byDay[d.Day] = d
	}
	for day := rep.From.UTC().Truncate(24 * time.Hour); day.Before(rep.To); day = day.AddDate(0, 0, 1) {
		d := byDay[day.Format(time.DateOnly)]
		cd.Days = append(cd.Days, day.Unix())
		total, _ := strconv.ParseFloat(string(cmpOrZero(d.CostUSD)), 64)
		cd.Total = append(cd.Total, total)
		perModel := map[string]float64{}
		for _, m := range d.Models {
			perModel[m.Model], _ = strconv.ParseFloat(string(m.CostUSD), 64)
		}
		for _, m := range cd.Models {
			cd.Series[m] = append(cd.Series[m], perModel[m])
		}
	}
	js, err := json.Marshal(cd)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "costs", map[string]any{"Rep": rep, "Chart": string(js)})
}

func cmpOrZero(n json.Number) json.Number {
	if n == "" {
		return "0"
	}
	return n
}

// gates shows the tenant's last launch-gates report; a POST runs the set
// (bounded by the runner's own timeout).
func (c *Console) gates(w http.ResponseWriter, r *http.Request) {
	d := map[string]any{"GatesURL": c.cfg.GatesURL, "CanRun": c.cfg.Gates != nil}
	if c.cfg.Gates != nil {
		rep, err := c.cfg.Gates(r, r.Method == http.MethodPost)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		if rep != nil {
			d["Report"], d["Score"] = rep, rep.ScoreLine()
		}
	}
	c.render(w, r, http.StatusOK, "gates", d)
}

func indentJSON(raw []byte) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw), err
	}
	return buf.String(), nil
}
