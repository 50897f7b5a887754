package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestActiveListFollowsChanges: the sorted list of active runs kept between
// ticks is the one a fresh sort gives after every kind of change (a run
// added, one changed in place, one ended), and is reused only while
// nothing changed.
func TestActiveListFollowsChanges(t *testing.T) {
	e := New(Config{})
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	run := func(wf string, age int, st state.RunState) *state.WorkflowRun {
		return &state.WorkflowRun{Workflow: wf, Number: 1, State: st, CreatedAt: t0.Add(time.Duration(age) * time.Second)}
	}
	set := func(r *state.WorkflowRun, key state.RunKey) {
		e.mu.Lock()
		e.setRunLocked(key, r)
		e.mu.Unlock()
	}
	fresh := func() []*state.WorkflowRun {
		e.mu.Lock()
		defer e.mu.Unlock()
		var out []*state.WorkflowRun
		for _, r := range e.runs {
			out = append(out, r)
		}
		sortRuns(out)
		return out
	}
	for i, wf := range []string{"c", "a", "b"} {
		r := run(wf, 3-i, state.RunPending)
		set(r, r.Key())
	}
	first := e.active()
	require.Equal(t, fresh(), first)
	require.Equal(t, []string{"b", "a", "c"}, []string{first[0].Workflow, first[1].Workflow, first[2].Workflow})
	again := e.active()
	require.Same(t, &first[0], &again[0], "nothing changed: the same list")

	changed := run("a", 2, state.RunRunning)
	set(changed, changed.Key())
	got := e.active()
	require.Equal(t, fresh(), got)
	require.Same(t, changed, got[1], "the changed run's new version")

	added := run("d", 0, state.RunPending)
	set(added, added.Key())
	require.Equal(t, fresh(), e.active())
	require.Same(t, added, e.active()[0])

	set(nil, run("b", 1, state.RunPending).Key())
	got = e.active()
	require.Equal(t, fresh(), got)
	require.Len(t, got, 3)
}
