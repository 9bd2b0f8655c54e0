package sweep_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/sweep"
)

func TestDrainRunsUntilAShortBatch(t *testing.T) {
	backlog := []int64{10, 10, 10, 4, 10}
	calls := 0
	total, err := sweep.Drain(context.Background(), 10, func(context.Context) (int64, error) {
		n := backlog[calls]
		calls++
		return n, nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(34), total)
	require.Equal(t, 4, calls, "the short batch ends the drain")
}

func TestDrainStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	total, err := sweep.Drain(context.Background(), 5, func(context.Context) (int64, error) {
		calls++
		if calls == 3 {
			return 0, boom
		}
		return 5, nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(10), total)
	require.Equal(t, 3, calls)
}

func TestEverySweepsAtOnceThenRepeatsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sweep.Every(ctx, time.Millisecond, func(context.Context) { calls <- struct{}{} })
	}()
	for range 3 {
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("no sweep")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
}

func TestEveryWithADoneContextSweepsOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	sweep.Every(ctx, time.Hour, func(context.Context) { calls++ })
	require.Equal(t, 1, calls)
}

func TestRunLogsAndReturnsTheContextsError(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := sweep.Run(ctx, time.Hour, log, "test: swept rows", func(context.Context) (int64, error) {
		calls++
		cancel() // one pass, then stop
		return 3, nil
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, calls)
	require.Contains(t, buf.String(), `msg="test: swept rows" rows=3`)

	buf.Reset()
	ctx, cancel = context.WithCancel(context.Background())
	failures := 0
	_ = sweep.Run(ctx, time.Millisecond, log, "test: swept rows", func(context.Context) (int64, error) {
		if failures++; failures == 2 {
			cancel() // the second failure ends with the context: not logged
		}
		return 0, errors.New("boom")
	})
	require.Contains(t, buf.String(), `msg="test: swept rows: sweep failed" error=boom`)
}

func TestDrainPacedStopsDuringAPause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	total, err := sweep.DrainPaced(ctx, 5, time.Hour, func(context.Context) (int64, error) {
		calls++
		cancel() // the pause after this full batch ends at once
		return 5, nil
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, int64(5), total)
	require.Equal(t, 1, calls, "no batch after the cancelled pause")
}
