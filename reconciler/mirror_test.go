package reconciler_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

// TestSyncNumbersRunsAfterRemainingRuns: runs of a workflow deleted through
// the API stay in the store. When Git later declares a workflow of that
// name, its run is numbered after them; it used to be run 1, which
// exists, and every sync failed with a conflict.
func TestSyncNumbersRunsAfterRemainingRuns(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	alice := state.APIUser("alice")
	key := state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-node-01"}

	// An ad-hoc workflow ran once and is running again; then it is
	// deleted through the API, and its runs remain.
	_, err := st.PutObject(ctx, alice, &state.Object{Kind: key.Kind, Name: key.Name, Source: state.SourceAPI,
		Spec: []byte(`{"templateRef":"provision","hardwareRef":"node-01"}`), Status: []byte(`{"lastRun":2}`)})
	require.NoError(t, err)
	for n, s := range []state.RunState{state.RunSuccess, state.RunRunning} {
		_, err := st.PutRun(ctx, alice, &state.WorkflowRun{Workflow: key.Name, Number: n + 1, State: s, Template: "provision", Hardware: "node-01"})
		require.NoError(t, err)
	}
	require.NoError(t, st.DeleteObject(ctx, alice, key, 0))

	out := sync(t, r, "r1", repo(1))
	require.True(t, out.Applied)
	require.Empty(t, out.Errors)
	require.Equal(t, []string{"workflow wf-node-01 will start (run 3, after the runs of an earlier workflow of that name) once run 2, now RUNNING, ends: " +
		"node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"}, out.Plan.Consequences())
	runs := runsOf(t, st, key.Name)
	require.Len(t, runs, 3)
	require.Equal(t, 3, runs[2].Number)
	require.Equal(t, state.RunPending, runs[2].State)
	require.Equal(t, "r1", runs[2].Revision)
	require.Equal(t, "declared in Git; waits for run 2 of an earlier workflow of that name to end", runs[2].Reason)
	obj, err := st.GetObject(ctx, key)
	require.NoError(t, err)
	require.JSONEq(t, `{"lastRun":3}`, string(obj.Status))

	// Bumping run goes on from there.
	bumped := withFile(repo(1), "workflows/node-01.yaml", wf("wf-node-01", "node-01", 1, "  run: 2\n"))
	out = sync(t, r, "r2", bumped)
	require.True(t, out.Applied)
	runs = runsOf(t, st, key.Name)
	require.Len(t, runs, 4)
	require.Equal(t, 4, runs[3].Number)

	// With the old runs ended, a workflow declared again simply starts.
	require.NoError(t, st.DeleteObject(ctx, alice, key, 0))
	for _, run := range runsOf(t, st, key.Name) {
		run.State = state.RunCancelled
		_, err := st.PutRun(ctx, alice, run)
		require.NoError(t, err)
	}
	out = sync(t, r, "r3", bumped)
	require.True(t, out.Applied)
	require.Equal(t, []string{"workflow wf-node-01 will start (run 5, after the runs of an earlier workflow of that name): " +
		"node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"}, out.Plan.Consequences())
	require.Len(t, runsOf(t, st, key.Name), 5)
}

// TestSyncSeesAPIWrites: the reconciler keeps the store's objects in
// memory between syncs; a write through the API in between is seen by the
// next plan, never planned over from the state before it.
func TestSyncSeesAPIWrites(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	alice := state.APIUser("alice")
	v1 := repo(2)
	require.True(t, sync(t, r, "r1", v1).Applied)
	node := func(name string) state.ObjectKey { return state.ObjectKey{Kind: state.KindHardware, Name: name} }

	t.Run("Deleted", func(t *testing.T) {
		require.NoError(t, st.DeleteObject(ctx, alice, node("node-02"), 0))
		out := sync(t, r, "r1", v1)
		require.Equal(t, 1, out.Plan.Count(reconciler.OpCreate), out.Plan.FormatText())
		_, err := st.GetObject(ctx, node("node-02"))
		require.NoError(t, err, "Git declares it: created again")
	})
	t.Run("Changed", func(t *testing.T) {
		hw, err := st.GetObject(ctx, node("node-01"))
		require.NoError(t, err)
		gitSpec := hw.Spec
		hw.Spec = []byte(strings.Replace(string(hw.Spec), "10.0.1.1", "10.0.1.99", 1))
		_, err = st.PutObject(ctx, alice, hw)
		require.NoError(t, err)
		out := sync(t, r, "r1", v1)
		require.Equal(t, 1, out.Plan.Count(reconciler.OpUpdate), out.Plan.FormatText())
		hw, err = st.GetObject(ctx, node("node-01"))
		require.NoError(t, err)
		require.JSONEq(t, string(gitSpec), string(hw.Spec), "Git's spec is back")
	})
	t.Run("StatusWritten", func(t *testing.T) {
		// The engine writes status; a Git change to the object keeps it.
		hw, err := st.GetObject(ctx, node("node-01"))
		require.NoError(t, err)
		hw.Status = []byte(`{"allowPXE":false}`)
		_, err = st.PutObject(ctx, state.ActorReconciler, hw)
		require.NoError(t, err)
		v2 := withFile(v1, "hardware/node-01.yaml", strings.Replace(string(v1["hardware/node-01.yaml"].Data), "10.0.0.1,", "10.0.0.51,", 1))
		out := sync(t, r, "r2", v2)
		require.True(t, out.Applied)
		hw, err = st.GetObject(ctx, node("node-01"))
		require.NoError(t, err)
		require.JSONEq(t, `{"allowPXE":false}`, string(hw.Status))
		require.Contains(t, string(hw.Spec), "10.0.0.51")
		v1 = v2
	})
	t.Run("CreatedThenDeclared", func(t *testing.T) {
		_, err := st.PutObject(ctx, alice, &state.Object{Kind: state.KindHardware, Name: "node-03", Source: state.SourceAPI, Spec: []byte(`{}`)})
		require.NoError(t, err)
		v3 := withFile(v1, "hardware/node-03.yaml", string(repo(3)["hardware/node-03.yaml"].Data))
		out := sync(t, r, "r3", v3)
		require.True(t, out.Applied)
		require.Contains(t, out.Plan.Consequences(), "hardware node-03 was created through the API; Git takes it over")
		hw, err := st.GetObject(ctx, node("node-03"))
		require.NoError(t, err)
		require.Equal(t, state.SourceGit, hw.Source)
	})
}

// TestSyncDefaultsReachEveryObject: a change to tink.cue's defaults
// changes objects whose files did not change; the objects cached from the
// last sync are not reused.
func TestSyncDefaultsReachEveryObject(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	v1 := repo(2)
	v1["tink.cue"] = &fstest.MapFile{Data: []byte(`defaults: labels: site: "ams1"` + "\n")}
	require.True(t, sync(t, r, "r1", v1).Applied)
	v2 := withFile(v1, "tink.cue", `defaults: labels: site: "fra1"`+"\n")
	out := sync(t, r, "r2", v2)
	require.Equal(t, 5, out.Plan.Count(reconciler.OpUpdate), out.Plan.FormatText())
	hw, err := st.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "node-02"})
	require.NoError(t, err)
	require.Equal(t, "fra1", hw.Labels["site"])
}
