package workflow

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestDeadlinesLookedAtWhenDue: a step looks at the runs' deadlines when
// the earliest one is due or a run changed, not at every step. One run's
// action has run since t0 with a 60 s timeout; another waits for its
// worker with a global deadline at t0+300 s. A change the engine was not
// told of (no real writer makes one: every change goes through
// setRunLocked) shows that a step before the due time looks at no run; a
// change it was told of is looked at on the next step, due or not.
func TestDeadlinesLookedAtWhenDue(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	at := func(d time.Duration) { mu.Lock(); now = t0.Add(d); mu.Unlock() }
	put := func(r *state.WorkflowRun) *state.WorkflowRun {
		w, err := st.PutRun(ctx, state.ActorReconciler, r)
		require.NoError(t, err)
		return w
	}
	busy := put(&state.WorkflowRun{Workflow: "busy", Number: 1, Hardware: "m1", State: state.RunRunning, StartedAt: t0, Deadline: t0.Add(600 * time.Second),
		Actions: []state.RunAction{{Name: "a", Worker: "m1", Timeout: 60, State: state.RunRunning, Attempt: 1, StartedAt: t0, Deadline: t0.Add(60 * time.Second)}}})
	idle := put(&state.WorkflowRun{Workflow: "idle", Number: 1, Hardware: "m2", State: state.RunRunning, StartedAt: t0, Deadline: t0.Add(300 * time.Second),
		Actions: []state.RunAction{{Name: "a", Worker: "m2", Timeout: 60, State: state.RunPending}}})

	e := New(Config{Store: st, Now: clock})
	e.Step(ctx)
	e.mu.Lock()
	require.True(t, e.dueValid)
	require.Equal(t, t0.Add(60*time.Second), e.due, "the earliest deadline: busy's action")
	// Behind the engine's back: idle's deadline has passed.
	late := cloneRun(idle)
	late.Deadline = t0.Add(-time.Second)
	e.runs[idle.Key()] = late
	for i, r := range e.sorted {
		if r.Key() == idle.Key() {
			e.sorted[i] = late
		}
	}
	e.mu.Unlock()

	at(30 * time.Second)
	e.Step(ctx)
	got, err := st.GetRun(ctx, idle.Key())
	require.NoError(t, err)
	require.Equal(t, state.RunRunning, got.State, "nothing due and nothing changed: the step looked at no run")

	at(61 * time.Second)
	e.Step(ctx)
	got, err = st.GetRun(ctx, busy.Key())
	require.NoError(t, err)
	require.Equal(t, state.RunTimeout, got.Actions[0].State, "busy's action timed out when due")
	got, err = st.GetRun(ctx, idle.Key())
	require.NoError(t, err)
	require.Equal(t, state.RunTimeout, got.State, "a due step looks at every run")

	// A run the engine is told of is looked at on the next step, whatever
	// the due time says.
	other := put(&state.WorkflowRun{Workflow: "other", Number: 1, Hardware: "m3", State: state.RunRunning, StartedAt: t0, Deadline: t0.Add(62 * time.Second),
		Actions: []state.RunAction{{Name: "a", Worker: "m3", Timeout: 60, State: state.RunPending}}})
	e.Step(ctx) // due is busy's global deadline again, at t0+600 s
	e.mu.Lock()
	e.setRunLocked(other.Key(), other)
	e.mu.Unlock()
	at(63 * time.Second)
	e.Step(ctx)
	got, err = st.GetRun(ctx, other.Key())
	require.NoError(t, err)
	require.Equal(t, state.RunTimeout, got.State)
}
