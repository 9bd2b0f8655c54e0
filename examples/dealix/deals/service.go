package deals

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Config configures the deals domain.
type Config struct {
	// DB is the app role's pool (bound by row-level security): requests
	// and the follow-up jobs run on it. Required.
	DB httpx.DB
	// Runtime runs the deal-closed workflow; New registers it there.
	// Required.
	Runtime *durable.Runtime
	// Jobs enqueues the follow-up messages (EnqueueTx inside the run's
	// step). Required.
	Jobs *dlq.Client
	// FollowupQueue is the queue of the follow-up messages. Required.
	FollowupQueue string
	// MaxBodyBytes bounds a request body. Default:
	// httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures. Default slog.Default().
	Log *slog.Logger
	// Debug injects faults for crash tests. The zero value (the default)
	// injects none.
	Debug Debug
}

// Debug injects faults into the close and its run, so a crash test can
// land a kill at a named point instead of hoping a random one does. Never
// set it in production: the reference server only honours it with debug
// routes on.
type Debug struct {
	// CrashAt names the points at which the process kills itself; see the
	// Crash... constants and StepCrashPoint/AfterStepCrashPoint.
	CrashAt []string
	// StepDelay is slept inside each step's transaction, after its
	// writes, so a kill from outside lands inside a step more often.
	StepDelay time.Duration
	// Crash is what reaching a point does. Default: SIGKILL of the
	// process itself, which runs no deferred function and closes no
	// connection politely: a real crash.
	Crash func(point string)
}

// The crash points of the close request.
const (
	// CrashCloseStart: the close request reached its handler, inside the
	// idempotency transaction, before any write.
	CrashCloseStart = "close:start"
	// CrashCloseInTx: the deal's status change and the run's start are
	// written, not committed.
	CrashCloseInTx = "close:in-tx"
	// CrashCloseCommitted: the transaction committed (deal, run and
	// stored answer), the client has not received the answer.
	CrashCloseCommitted = "close:committed"
	// CrashFollowupSent: a follow-up job recorded its message, the job is
	// not yet marked completed (so it will run again).
	CrashFollowupSent = "job:followup-sent"
)

// The deal-closed run's steps, in order.
const (
	StepEvidence  = "evidence"
	StepTask      = "follow-up-task"
	StepFollowups = "enqueue-followups"
)

// Steps lists the run's steps in order.
var Steps = []string{StepEvidence, StepTask, StepFollowups}

// StepCrashPoint names the point inside step's transaction, after its
// writes and before its commit.
func StepCrashPoint(step string) string { return "step:" + step }

// AfterStepCrashPoint names the point right after step committed its
// checkpoint, before the next step begins.
func AfterStepCrashPoint(step string) string { return "after-step:" + step }

// CrashPoints lists every point Debug.CrashAt may name.
func CrashPoints() []string {
	points := []string{CrashCloseStart, CrashCloseInTx, CrashCloseCommitted, CrashFollowupSent}
	for _, s := range Steps {
		points = append(points, StepCrashPoint(s), AfterStepCrashPoint(s))
	}
	return points
}

// Service is the deals domain: its HTTP handlers, the deal-closed
// workflow and the follow-up job handler.
type Service struct {
	cfg    Config
	log    *slog.Logger
	closed *durable.Workflow[ClosedInput, ClosedOutput]
	crash  map[string]bool
}

// New checks cfg and registers the deal-closed workflow on cfg.Runtime.
// Register the follow-up handler (FollowupHandler) on cfg.FollowupQueue
// for the kind FollowupKind.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.DB == nil, cfg.Runtime == nil, cfg.Jobs == nil:
		return nil, errors.New("deals: DB, Runtime and Jobs are required")
	case cfg.FollowupQueue == "":
		return nil, errors.New("deals: FollowupQueue is required")
	}
	s := &Service{cfg: cfg, log: cmp.Or(cfg.Log, slog.Default()), crash: map[string]bool{}}
	known := CrashPoints()
	for _, p := range cfg.Debug.CrashAt {
		if !slices.Contains(known, p) {
			return nil, fmt.Errorf("deals: unknown crash point %q (known: %v)", p, known)
		}
		s.crash[p] = true
	}
	var err error
	if s.closed, err = durable.Register(cfg.Runtime, WorkflowName, s.runClosed); err != nil {
		return nil, fmt.Errorf("deals: %w", err)
	}
	return s, nil
}

// crashAt kills the process when Debug names point.
func (s *Service) crashAt(ctx context.Context, point string) {
	if !s.crash[point] {
		return
	}
	s.log.ErrorContext(ctx, "deals: debug crash point reached; killing the process", "point", point)
	if s.cfg.Debug.Crash != nil {
		s.cfg.Debug.Crash(point)
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {} // the signal is on its way; nothing more may happen here
}

// pause sleeps Debug.StepDelay, or until ctx ends.
func (s *Service) pause(ctx context.Context) {
	if d := s.cfg.Debug.StepDelay; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// AfterCommit wraps the idempotency middleware of the close route: it is
// where CrashCloseCommitted fires, when the answer (already committed
// with the deal and its run) starts on its way to the client. Without
// that crash point it returns h itself.
func (s *Service) AfterCommit(h http.Handler) http.Handler {
	if !s.crash[CrashCloseCommitted] {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&commitHook{ResponseWriter: w, fire: func(status int) {
			if status == http.StatusOK {
				s.crashAt(r.Context(), CrashCloseCommitted)
			}
		}}, r)
	})
}

type commitHook struct {
	http.ResponseWriter
	fire  func(status int)
	fired bool
}

func (c *commitHook) WriteHeader(status int) {
	if !c.fired {
		c.fired = true
		c.fire(status)
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *commitHook) Write(b []byte) (int, error) {
	if !c.fired {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *commitHook) Unwrap() http.ResponseWriter { return c.ResponseWriter }
