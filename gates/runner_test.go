package gates_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/gates"
)

func status(s gates.Status) gates.Check {
	return gates.CheckFunc(func(context.Context) gates.Result { return gates.Result{Status: s, Evidence: string(s)} })
}

// launchSet has 30 gates, the first five P0, of which closed gates close
// and the rest are open; p0Open of the P0 gates are open.
func launchSet(closed, p0Open int) *gates.Set {
	set := &gates.Set{Name: "Launch gates", Rule: gates.Rule{MinClosed: 24, AllP0: true}}
	for i := range 30 {
		g := gates.Gate{ID: fmt.Sprintf("G%d", i+1), Title: "gate", Priority: gates.P1, Check: status(gates.Open)}
		if i < 5 {
			g.Priority = gates.P0
		}
		set.Gates = append(set.Gates, g)
	}
	// Close P0 gates first, except the ones asked open, then the others.
	n := 0
	for i := p0Open; i < 30 && n < closed; i++ {
		set.Gates[i].Check = status(gates.Closed)
		n++
	}
	return set
}

func TestLaunchRuleAtItsBoundaries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		closed, p0Open int
		pass           bool
	}{
		{"23 of 30 with every P0", 23, 0, false},
		{"24 of 30 with one P0 open", 24, 1, false},
		{"24 of 30 with every P0", 24, 0, true},
		{"30 of 30", 30, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report, err := launchSet(tc.closed, tc.p0Open).Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.closed, report.Closed())
			require.Equal(t, tc.pass, report.Pass)
			require.Equal(t, map[bool]int{true: 0, false: 1}[tc.pass], report.ExitCode())
			require.Len(t, report.OpenP0, tc.p0Open)
		})
	}
}

func TestBlockedNeverCountsAsClosed(t *testing.T) {
	t.Parallel()
	set := &gates.Set{Name: "s", Gates: []gates.Gate{
		{ID: "A", Title: "a", Check: status(gates.Closed)},
		{ID: "B", Title: "b", Check: gates.BlockedCheck{Reason: "needs a PostHog API key"}},
	}}
	report, err := set.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, report.Closed())
	require.Equal(t, 1, report.Counts[gates.Blocked])
	require.False(t, report.Pass)
	require.Equal(t, "needs a PostHog API key", report.Results[1].Result.Reason)

	set.Rule = gates.Rule{MinClosed: 1}
	report, err = set.Run(context.Background())
	require.NoError(t, err)
	require.True(t, report.Pass, "one closed of two is enough under MinClosed 1")
}

func TestInvalidSetsAreRefused(t *testing.T) {
	t.Parallel()
	for name, set := range map[string]*gates.Set{
		"duplicate id":   {Gates: []gates.Gate{{ID: "A"}, {ID: "A"}}},
		"empty id":       {Gates: []gates.Gate{{ID: ""}}},
		"bad priority":   {Gates: []gates.Gate{{ID: "A", Priority: "P9"}}},
		"rule too large": {Rule: gates.Rule{MinClosed: 3}, Gates: []gates.Gate{{ID: "A"}}},
	} {
		_, err := set.Run(context.Background())
		require.ErrorIs(t, err, gates.ErrInvalidSet, name)
	}
}

func TestChecksRunConcurrently(t *testing.T) {
	t.Parallel()
	// Each check waits for all the others to start: serial running would
	// time every one of them out.
	const n = 4
	started := make(chan struct{}, n)
	all := make(chan struct{})
	set := &gates.Set{Name: "concurrent"}
	for i := range n {
		set.Gates = append(set.Gates, gates.Gate{ID: fmt.Sprint(i), Title: "t", Check: gates.CheckFunc(func(ctx context.Context) gates.Result {
			started <- struct{}{}
			select {
			case <-all:
				return gates.Result{Status: gates.Closed}
			case <-ctx.Done():
				return gates.Result{Status: gates.Open, Reason: "alone"}
			}
		})})
	}
	go func() {
		for range n {
			<-started
		}
		close(all)
	}()
	report, err := set.Run(context.Background())
	require.NoError(t, err)
	require.True(t, report.Pass)
}
