package workflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNextLeavesNoWaiter: a machine that asks for work and gets none
// (Tinkerbell's agent asks every few seconds without waiting) leaves
// nothing behind, however often it asks; nor does one that got work or
// gave up.
func TestNextLeavesNoWaiter(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0)
	for range 100 {
		require.Nil(t, f.next(t))
	}
	require.Zero(t, f.e.Waiters(), "unanswered asks")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := f.e.Next(short, "52:54:00:00:00:01", time.Minute)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, f.e.Waiters(), "an ask that gave up")

	g := setup(t, 0, "wf-1")
	g.e.Step(ctx)
	require.NotNil(t, g.next(t))
	require.Zero(t, g.e.Waiters(), "an ask that got work")
}
