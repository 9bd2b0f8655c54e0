package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
)

// The sales backend's four queues.
const (
	QueueWebhooks  = "webhooks"  // verified inbound webhooks: checkout, HubSpot, Calendly
	QueueOutbound  = "outbound"  // messages of approved or unheld campaigns
	QueueFollowups = "followups" // follow-up messages after a deal closes
	QueueScoring   = "scoring"   // lead scoring by the model
)

// Queues lists the four queues, in the order the admin pages show them.
var Queues = []string{QueueWebhooks, QueueOutbound, QueueFollowups, QueueScoring}

// Platform is what the domains of the sales backend share, beyond the
// request path: queues, durable runs and the approvals gate. A domain
// registers its job handlers, workflows and approval continuations on it
// while the server is built (Handle, OnApproved, OnRejected, and
// durable.Register on Runtime), before Start.
type Platform struct {
	// Jobs enqueues on the app role: Enqueue with the request's tenant, or
	// EnqueueTx inside the request's transaction.
	Jobs *dlq.Client
	// Runtime starts and runs durable workflows (StartTx inside the
	// request's transaction).
	Runtime *durable.Runtime
	// Approvals holds risky actions for a person's decision.
	Approvals *approvals.Service

	log      *slog.Logger
	system   dlq.DB
	mu       sync.Mutex
	handlers map[string]map[string]dlq.Handler // queue → kind → handler
	approved map[string]approvals.Hook         // action kind → continuation
	rejected map[string]approvals.Hook
	worker   *dlq.Client
	started  bool
	runDone  chan error
	stopRun  context.CancelFunc
	sweepers sync.WaitGroup
}

// newPlatform builds the shared services on the app and system pools.
func newPlatform(app dlq.DB, system interface {
	dlq.DB
	durable.Execer
}, log *slog.Logger) (*Platform, error) {
	p := &Platform{log: log, system: system,
		handlers: map[string]map[string]dlq.Handler{},
		approved: map[string]approvals.Hook{}, rejected: map[string]approvals.Hook{}}
	var err error
	if p.Jobs, err = dlq.NewClient(app, dlq.Config{Logger: log}); err != nil {
		return nil, err
	}
	if p.Runtime, err = durable.New(durable.Config{App: app, System: system, Logger: log}); err != nil {
		return nil, err
	}
	p.Approvals, err = approvals.New(app, approvals.Config{
		Logger:    log,
		OnApprove: p.dispatchDecision(p.approved),
		OnReject:  p.dispatchDecision(p.rejected),
	})
	return p, err
}

// Handle registers h for the jobs of kind on queue. A job of a kind no
// one registered is dead-lettered at once with the reason.
func (p *Platform) Handle(queue, kind string, h dlq.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		panic("server: Platform.Handle after Start")
	}
	if p.handlers[queue] == nil {
		p.handlers[queue] = map[string]dlq.Handler{}
	}
	p.handlers[queue][kind] = h
}

// OnApproved registers the continuation of approved actions of kind: it
// runs inside the approving transaction, exactly once per request, so an
// EnqueueTx there commits with the decision (the outbox).
func (p *Platform) OnApproved(kind string, h approvals.Hook) { p.onDecision(p.approved, kind, h) }

// OnRejected registers what runs inside the rejecting transaction of an
// action of kind.
func (p *Platform) OnRejected(kind string, h approvals.Hook) { p.onDecision(p.rejected, kind, h) }

func (p *Platform) onDecision(hooks map[string]approvals.Hook, kind string, h approvals.Hook) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hooks[kind] = h
}

// dispatchDecision routes a decision to the hook of its action's kind; a
// kind without one needs nothing done.
func (p *Platform) dispatchDecision(hooks map[string]approvals.Hook) approvals.Hook {
	return func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		p.mu.Lock()
		h := hooks[d.Kind]
		p.mu.Unlock()
		if h == nil {
			return nil
		}
		return h(ctx, tx, d)
	}
}

// dispatch routes a queue's jobs to the handler of their kind.
func dispatch(queue string, kinds map[string]dlq.Handler) dlq.Handler {
	return dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
		h := kinds[job.Kind]
		if h == nil {
			return dlq.Discard(fmt.Errorf("queue %s has no handler for kind %q", queue, job.Kind))
		}
		return h.Work(ctx, job)
	})
}

// Start works the four queues on the system role and runs the durable
// workflows, unless cfg.NoWorkers leaves that to other instances. Queues
// no domain registered a handler on are still created, so their stats
// show.
func (p *Platform) Start(ctx context.Context, cfg Config) error {
	p.mu.Lock()
	p.started = true
	if cfg.NoWorkers {
		p.mu.Unlock()
		p.log.Info("no workers on this instance (DEALIX_WORKERS=false): queued jobs and durable runs wait for an instance with workers")
		return nil
	}
	queues := map[string]dlq.QueueConfig{}
	for _, q := range Queues {
		queues[q] = dlq.QueueConfig{Handler: dispatch(q, p.handlers[q]), Concurrency: 8, Timeout: 30 * time.Second}
	}
	p.mu.Unlock()
	listen, err := listenConfig(cfg)
	if err != nil {
		return err
	}
	worker, err := dlq.NewClient(p.system, dlq.Config{Queues: queues, ListenConfig: listen, Logger: p.log})
	if err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	p.worker = worker
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopRun = cancel
	p.runDone = make(chan error, 1)
	go func() { p.runDone <- p.Runtime.Run(runCtx) }()
	return p.startSweepers(runCtx)
}

// startSweepers expires approval requests past their time to live and
// deletes finished durable runs past their retention, across tenants on
// the system role, until the platform stops. (The queue worker sweeps its
// own finished jobs.)
func (p *Platform) startSweepers(ctx context.Context) error {
	expiry, err := approvals.NewSweeper(p.system, approvals.SweeperConfig{Logger: p.log})
	if err != nil {
		return err
	}
	retention, err := durable.NewSweeper(p.system, durable.SweeperConfig{Logger: p.log})
	if err != nil {
		return err
	}
	for _, run := range []func(context.Context) error{expiry.Run, retention.Run} {
		p.sweepers.Go(func() { _ = run(ctx) })
	}
	return nil
}

// Stop stops the work softly: jobs and steps in hand finish and are
// recorded, runs are parked for another instance. When ctx ends first the
// work is cancelled (the hard stop).
func (p *Platform) Stop(ctx context.Context) error {
	var errs []error
	if p.worker != nil {
		if err := p.worker.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("queues: %w", err))
		}
	}
	if p.runDone != nil {
		if err := p.Runtime.Stop(ctx); err != nil {
			// The soft stop ran out of time: cut the steps short, bounded
			// again so a stuck step cannot hold the process.
			hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = p.Runtime.StopAndCancel(hard)
			cancel()
			errs = append(errs, fmt.Errorf("durable runs: %w", err))
		}
		p.stopRun()
		p.sweepers.Wait()
		if err := <-p.runDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, durable.ErrStopped) {
			errs = append(errs, fmt.Errorf("durable runs: %w", err))
		}
	}
	return errors.Join(errs...)
}
