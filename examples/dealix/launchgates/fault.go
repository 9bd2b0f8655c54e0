package launchgates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dealix/platform/gates"
)

// WebhookFault is the fault injection of T5 (Config.FaultInjection): with
// the webhook handler switched to fail, one delivery's job is retried and
// lands dead; once the handler is fixed, a re-drive runs it and its effect
// happens. The functions connect it to a server: for the reference
// server, Fail marks one probe contact in the intake domain
// (Service.FailHubSpotFor, with Service.HubSpotAttemptsFor 1 so its job is
// dead at its first attempt) and leaves every other delivery alone,
// Deliver posts a correctly signed HubSpot delivery of that contact, Dead
// and Redrive read and re-drive that delivery's job, and Done looks for
// the contact's lead.
type WebhookFault struct {
	// Fail switches the handler's failure on (true) or off.
	Fail func(on bool)
	// Deliver sends one verified delivery.
	Deliver func(ctx context.Context) error
	// Dead counts the queue's dead jobs.
	Dead func(ctx context.Context) (int64, error)
	// Redrive re-drives the queue's dead jobs and says how many.
	Redrive func(ctx context.Context) (int64, error)
	// Done reports whether the delivery's effect happened.
	Done func(ctx context.Context) (bool, error)
	// Describe, when set, names the delivery in the evidence (such as
	// its job and address); it is called once the check has run.
	Describe func() string
	// Poll is how often Dead and Done are read while waiting. Default
	// 100ms.
	Poll time.Duration
}

// Run injects the fault and follows the job to its dead letter and back;
// it waits at most until ctx ends. The handler is switched back to work
// whatever happens.
func (f WebhookFault) Run(ctx context.Context) gates.Result {
	evidence, err := f.run(ctx)
	if err != nil {
		return open("fault injection: %v", err)
	}
	return closed("%s", evidence)
}

func (f WebhookFault) run(ctx context.Context) (string, error) {
	if f.Fail == nil || f.Deliver == nil || f.Dead == nil || f.Redrive == nil || f.Done == nil {
		return "", errors.New("WebhookFault needs Fail, Deliver, Dead, Redrive and Done")
	}
	before, err := f.Dead(ctx)
	if err != nil {
		return "", err
	}
	f.Fail(true)
	defer f.Fail(false)
	start := time.Since(origin)
	if err := f.Deliver(ctx); err != nil {
		return "", fmt.Errorf("deliver: %w", err)
	}
	dead, err := f.await(ctx, "the failing delivery to land dead", func(ctx context.Context) (bool, error) {
		n, err := f.Dead(ctx)
		return n > before, err
	})
	if err != nil {
		return "", err
	}
	if done, err := f.Done(ctx); err != nil || done {
		return "", fmt.Errorf("the failing delivery's effect happened anyway (%v)", err)
	}
	f.Fail(false)
	n, err := f.Redrive(ctx)
	if err != nil {
		return "", fmt.Errorf("re-drive: %w", err)
	}
	if n < 1 {
		return "", errors.New("re-drive found no dead job")
	}
	done, err := f.await(ctx, "the re-driven delivery's effect", f.Done)
	if err != nil {
		return "", err
	}
	after, err := f.Dead(ctx)
	if err != nil {
		return "", err
	}
	if after > before {
		return "", fmt.Errorf("%d dead after the re-drive, %d before the fault", after, before)
	}
	what := "failing delivery"
	if f.Describe != nil {
		what += " (" + f.Describe() + ")"
	}
	return fmt.Sprintf("%s dead after %s; re-drove %d; effect done %s later; dead letters back to %d",
		what, (dead - start).Round(time.Millisecond), n, (done - dead).Round(time.Millisecond), after), nil
}

// await polls cond until it holds, and returns the time since an arbitrary
// but common origin (the monotonic clock) at which it did.
func (f WebhookFault) await(ctx context.Context, what string, cond func(context.Context) (bool, error)) (time.Duration, error) {
	tick := time.NewTicker(cmp.Or(f.Poll, 100*time.Millisecond))
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(origin), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

var origin = time.Now()
