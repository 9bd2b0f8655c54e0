package dlq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTxNotifyLimiterNotifiesEachQueueOncePerCooldown(t *testing.T) {
	var l txNotifyLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const every = 10 * time.Millisecond

	require.Equal(t, []string{"a", "b"}, l.due([]string{"b", "a", "b"}, t0, every), "first enqueue of each queue notifies, once")
	require.Empty(t, l.due([]string{"a", "b"}, t0.Add(9*time.Millisecond), every), "within the cooldown nothing is notified")
	require.Equal(t, []string{"c"}, l.due([]string{"a", "c"}, t0.Add(9*time.Millisecond), every), "another queue has its own cooldown")
	require.Equal(t, []string{"a", "b"}, l.due([]string{"a", "b"}, t0.Add(every), every), "after the cooldown each queue notifies again")
	require.Empty(t, l.due([]string{"c"}, t0.Add(every), every), "c was notified 1ms ago")
}
