package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWebhookGuardRemembersDeliveries: a delivery id is refused again
// within the window, accepted after it, and the ids remembered never
// exceed maxDeliveries (the oldest go first).
func TestWebhookGuardRemembersDeliveries(t *testing.T) {
	var g webhookGuard
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	require.True(t, g.remember("a", t0))
	require.False(t, g.remember("a", t0.Add(time.Hour)), "a replay within the window")
	require.True(t, g.remember("a", t0.Add(deliveryWindow+time.Minute)), "remembered no longer")

	var h webhookGuard
	for i := range maxDeliveries + 5 {
		require.True(t, h.remember(fmt.Sprint(i), t0))
	}
	require.Len(t, h.seen, maxDeliveries)
	require.Len(t, h.order, maxDeliveries)
	require.True(t, h.remember("0", t0), "the oldest were forgotten first")
	require.False(t, h.remember(fmt.Sprint(maxDeliveries+4), t0))
}

// TestWebhookGuardSummaries: the first refusal is summed up at once, the
// next ones only once the interval has passed, counting every refusal
// since the last written summary.
func TestWebhookGuardSummaries(t *testing.T) {
	var g webhookGuard
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	msg, n, due := g.refusal("10.0.0.1:5000", "missing or wrong signature", t0, time.Minute)
	require.True(t, due)
	require.Equal(t, 1, n)
	require.Equal(t, "1 webhook request(s) refused since 2026-12-01T00:00:00Z; the last from 10.0.0.1:5000: missing or wrong signature (tink_webhook_refused_total counts them all)", msg)
	g.summarised(n, t0)
	for i := 1; i <= 500; i++ {
		_, _, due = g.refusal("10.0.0.2:5000", "missing or wrong signature", t0.Add(time.Duration(i)*100*time.Millisecond), time.Minute)
		require.False(t, due)
	}
	msg, n, due = g.refusal("10.0.0.3:5000", "delivery d-1 replayed", t0.Add(time.Minute), time.Minute)
	require.True(t, due)
	require.Equal(t, 501, n)
	require.Contains(t, msg, "501 webhook request(s) refused since")
	require.Contains(t, msg, "the last from 10.0.0.3:5000: delivery d-1 replayed")
}
