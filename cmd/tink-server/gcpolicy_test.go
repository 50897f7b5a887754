package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gcScript drives an idleGC through a list of windows, each the bytes
// allocated in it and the live heap, and records what the policy did.
type gcScript struct {
	mu        sync.Mutex
	windows   [][2]uint64
	allocated uint64
	percent   int
	effective int // percent, not counting Run reading it with -1
	calls     []string
	cancel    context.CancelFunc
}

func (s *gcScript) read() (uint64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.windows) == 0 {
		s.cancel()
		return s.allocated, 0
	}
	w := s.windows[0]
	s.windows = s.windows[1:]
	s.allocated += w[0]
	return s.allocated, w[1]
}

func (s *gcScript) setPercent(p int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.percent
	s.percent = p
	if p != -1 && p != s.effective {
		s.calls = append(s.calls, fmt.Sprintf("gogc %d", p))
		s.effective = p
	}
	return old
}

func (s *gcScript) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "release")
}

// runScript runs the policy over windows (the first read is the start) and
// returns what it did.
func runScript(t *testing.T, windows ...[2]uint64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := &gcScript{windows: append([][2]uint64{{0, 0}}, windows...), percent: 100, effective: 100, cancel: cancel}
	p := &idleGC{log: slog.New(slog.DiscardHandler), window: time.Millisecond, quiet: 3, quietBytes: 2 << 20, busyBytes: 8 << 20,
		percent: 10, minLive: 32 << 20,
		read: s.read, setPercent: s.setPercent, release: s.release}
	require.NoError(t, p.Run(ctx))
	require.Equal(t, 100, s.percent, "GOGC is restored when the policy stops")
	return s.calls
}

func TestIdleGC(t *testing.T) {
	const mb = 1 << 20
	live := uint64(100 * mb)
	quiet := [2]uint64{2 * mb, live}
	between := [2]uint64{5 * mb, live}
	busy := [2]uint64{9 * mb, live}

	t.Run("IdleAfterQuietWindows", func(t *testing.T) {
		require.Equal(t, []string{"gogc 10", "release", "gogc 100"},
			runScript(t, quiet, quiet, quiet, quiet))
	})
	t.Run("ABusyWindowStartsTheCountAgain", func(t *testing.T) {
		require.Equal(t, []string{"gogc 10", "release", "gogc 100"},
			runScript(t, quiet, quiet, between, quiet, quiet, quiet))
		require.Empty(t, runScript(t, quiet, quiet, between, quiet, quiet))
	})
	t.Run("BusyAgainRestoresTheDefault", func(t *testing.T) {
		require.Equal(t, []string{"gogc 10", "release", "gogc 100", "gogc 10", "release", "gogc 100"},
			runScript(t, quiet, quiet, quiet, between, between, busy, quiet, quiet, quiet))
	})
	t.Run("CostNotHeapDecides", func(t *testing.T) {
		// The allocation rate decides, whatever the heap's size: 3 MB
		// per window is a sliver of a 2 GB heap, but above the quiet
		// rate, and GOGC 10's cost grows with the rate alone.
		big := [2]uint64{3 * mb, 2048 * mb}
		require.Empty(t, runScript(t, big, big, big, big, big))
	})
	t.Run("SmallHeapLeftAlone", func(t *testing.T) {
		small := [2]uint64{0, 8 * mb}
		require.Empty(t, runScript(t, small, small, small, small, small))
	})
	t.Run("OperatorPolicyWins", func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
			env := func(k string) string {
				if k == name {
					return "off"
				}
				return ""
			}
			require.Nil(t, newIdleGC(log, env), name)
		}
		require.NotNil(t, newIdleGC(log, func(string) string { return "" }))
	})
}
