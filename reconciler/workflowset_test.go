package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

const rackHwFmt = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %s
  labels: {rack: %s}
spec:
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp: {mac: "52:54:00:00:%02x:%02x", ip: {address: 10.0.%d.%d, netmask: 255.255.255.0}}
`

const setYAML = `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata:
  name: reimage
spec:
  templateRef: %s
  hardwareSelector: %s
  rollout: {maxInFlight: 5, maxFailures: 2}
`

// rackRepo declares n machines in rack r7 (node-001...), the template
// provision and a WorkflowSet over selector.
func rackRepo(n int, template, selector string) fstest.MapFS {
	fsys := fstest.MapFS{
		"templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmplFmt, "provision", 600))},
		"sets/reimage.yaml":        {Data: []byte(fmt.Sprintf(setYAML, template, selector))},
	}
	for i := 1; i <= n; i++ {
		setRack(fsys, i, "r7")
	}
	return fsys
}

func setRack(fsys fstest.MapFS, i int, rack string) {
	hw := fmt.Sprintf("node-%03d", i)
	fsys["hardware/"+hw+".yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(rackHwFmt, hw, rack, i/256, i%256, i/250, i%250+1))}
}

// TestWorkflowSetPlan: a set over 50 machines owns one workflow per
// machine; its plan names every machine and the rollout; a broken set (an
// unknown template, or a selector that suddenly matches nothing) is an
// error at its file and line, not a mass action; label changes in Git
// add and drop machines.
func TestWorkflowSetPlan(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})

	v1 := rackRepo(50, "provision", "rack=r7")
	plan, errs, err := r.PlanSnapshot(ctx, reconciler.Snapshot{Revision: "pr", FS: v1})
	require.NoError(t, err)
	require.Empty(t, errs)
	cs := plan.Consequences()
	require.Equal(t, "workflow set reimage: 50 machines in rack=r7 will run template provision, at most 5 at a time, pausing after more than 2 failures", cs[0])
	md := plan.FormatMarkdown()
	for i := 1; i <= 50; i++ {
		hw := fmt.Sprintf("node-%03d", i)
		require.Contains(t, md, fmt.Sprintf("workflow reimage-%s (set reimage, in its wave) will start: %s will run template provision", hw, hw))
	}

	out := sync(t, r, "main@sha1:1", v1)
	require.True(t, out.Applied)
	wf, err := st.GetObject(ctx, state.ObjectKey{Kind: state.KindWorkflow, Name: "reimage-node-007"})
	require.NoError(t, err)
	require.Equal(t, "reimage", wf.Labels["tinkops.dev/workflowset"])
	require.Equal(t, "sets/reimage.yaml", wf.File)
	require.Len(t, runsOf(t, st, "reimage-node-007"), 1)
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "WorkflowSet", Name: "reimage"})
	require.NoError(t, err)

	t.Run("UnknownTemplate", func(t *testing.T) {
		out := sync(t, r, "main@sha1:2", rackRepo(50, "provison", "rack=r7"))
		require.False(t, out.Applied)
		require.Len(t, out.Errors, 1, "%v", out.Errors)
		require.Equal(t, "sets/reimage.yaml:6:16: spec.templateRef: template \"provison\" is not declared", out.Errors[0].Error())
	})
	t.Run("SelectorMatchesNothing", func(t *testing.T) {
		out := sync(t, r, "main@sha1:3", rackRepo(50, "provision", "rack=r8"))
		require.False(t, out.Applied)
		require.Len(t, out.Errors, 1, "%v", out.Errors)
		require.Equal(t, `sets/reimage.yaml:7:21: spec.hardwareSelector: hardwareSelector "rack=r8" matches no hardware, but the set selected 50 machines before; a selector that suddenly matches nothing is taken for a mistake (to retire the set, delete it)`, out.Errors[0].Error())
		page, err := st.ListRuns(ctx, state.RunQuery{})
		require.NoError(t, err)
		require.Len(t, page.Runs, 50, "nothing started, nothing dropped")
	})
	t.Run("LabelsAddAndDrop", func(t *testing.T) {
		v2 := rackRepo(51, "provision", "rack=r7")
		setRack(v2, 3, "r8") // leaves the set
		out := sync(t, r, "main@sha1:4", v2)
		require.True(t, out.Applied, "%v", out.Errors)
		joined := false
		for _, c := range out.Plan.Changes {
			if c.Key.Name == "reimage-node-051" {
				require.Equal(t, reconciler.OpCreate, c.Op)
				joined = true
			}
			if c.Key.Name == "reimage-node-003" {
				require.Equal(t, reconciler.OpOrphaned, c.Op, "prune is off: kept, and the gate never starts it")
			}
		}
		require.True(t, joined)
		require.Len(t, runsOf(t, st, "reimage-node-051"), 1)
		require.True(t, strings.Contains(strings.Join(out.Plan.Consequences(), "\n"), "workflow set reimage: 1 machine in rack=r7 will run template provision"))
	})
}

// TestRolloutGate: the gate lets a set's waiting runs start in its order
// up to maxInFlight; a machine whose labels no longer match is not
// started, while a run already going is left to finish; runs no set owns
// are never held.
func TestRolloutGate(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	fsys := rackRepo(4, "provision", "rack=r7")
	fsys["sets/reimage.yaml"].Data = []byte(strings.Replace(string(fsys["sets/reimage.yaml"].Data), "maxInFlight: 5", "maxInFlight: 2", 1))
	fsys["workflows/solo.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(wfFmt, "solo", "provision", "node-004", 4, ""))}
	out := sync(t, r, "main@sha1:1", fsys)
	require.True(t, out.Applied, "%v", out.Errors)

	active := func() []*state.WorkflowRun {
		page, err := st.ListRuns(ctx, state.RunQuery{})
		require.NoError(t, err)
		return page.Runs
	}
	gate := reconciler.NewRollout(st, nil)
	held := gate.Hold(ctx, active())
	require.Equal(t, map[state.RunKey]string{
		{Workflow: "reimage-node-003", Number: 1}: "waits for its wave in workflow set reimage (at most 2 at a time)",
		{Workflow: "reimage-node-004", Number: 1}: "waits for its wave in workflow set reimage (at most 2 at a time)",
	}, held, "node-001 and node-002 start; the workflow solo is no set's")

	// node-001 runs; node-002 leaves the rack before it started.
	run, err := st.GetRun(ctx, state.RunKey{Workflow: "reimage-node-001", Number: 1})
	require.NoError(t, err)
	run.State = state.RunRunning
	_, err = st.PutRun(ctx, state.ActorReconciler, run)
	require.NoError(t, err)
	setRack(fsys, 2, "r8")
	require.True(t, sync(t, r, "main@sha1:2", fsys).Applied)
	held = gate.Hold(ctx, active())
	require.Equal(t, map[state.RunKey]string{
		{Workflow: "reimage-node-002", Number: 1}: "workflow set reimage no longer selects node-002; not started",
		{Workflow: "reimage-node-004", Number: 1}: "waits for its wave in workflow set reimage (at most 2 at a time)",
	}, held, "node-003 takes the free place")
}

// TestWorkflowSetPruneGuard: deleting a set deletes the workflows it owns
// (prune on), and the mass-deletion guard counts them: removing a set over
// 50 machines is blocked like removing 50 workflow files would be.
func TestWorkflowSetPruneGuard(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	v1 := rackRepo(50, "provision", "rack=r7")
	require.True(t, sync(t, reconciler.New(reconciler.Config{Store: st}), "main@sha1:1", v1).Applied)
	page, err := st.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	for _, run := range page.Runs {
		run.State = state.RunSuccess
		_, err := st.PutRun(ctx, state.ActorReconciler, run)
		require.NoError(t, err)
	}
	v2 := clone(v1)
	delete(v2, "sets/reimage.yaml")
	r := reconciler.New(reconciler.Config{Store: st, Plan: reconciler.Options{Prune: true, MaxPruneShare: 0.4}})
	out := sync(t, r, "main@sha1:2", v2)
	require.False(t, out.Applied)
	require.Equal(t, 51, out.Plan.Count(reconciler.OpDelete))
	require.Equal(t, "the plan deletes 51 of 102 Git-managed objects, more than 40%; nothing was applied (if this is intended, apply it with forced prune)", out.Plan.Blocked)
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: state.KindWorkflow, Name: "reimage-node-001"})
	require.NoError(t, err, "nothing was deleted")
}

// TestRolloutPauseAndBump: failures past maxFailures pause the set (an
// event names the machines); a bump of the set's run starts a new rollout
// that is not paused.
func TestRolloutPauseAndBump(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	fsys := rackRepo(7, "provision", "rack=r7")
	require.True(t, sync(t, r, "main@sha1:1", fsys).Applied)
	gate := reconciler.NewRollout(st, nil)
	runs := func(states ...state.RunState) []*state.WorkflowRun {
		page, err := st.ListRuns(ctx, state.RunQuery{States: states})
		require.NoError(t, err)
		return page.Runs
	}
	// Six end, three of them failed; node-007 still waits.
	for i, run := range runs()[:6] {
		run.State = state.RunSuccess
		if i%2 == 0 {
			run.State = state.RunFailed
		}
		_, err := st.PutRun(ctx, state.ActorReconciler, run)
		require.NoError(t, err)
	}
	held := gate.Hold(ctx, runs(state.RunPending))
	require.Equal(t, map[state.RunKey]string{
		{Workflow: "reimage-node-007", Number: 1}: "workflow set reimage is paused: 3 machines failed (node-001, node-003, node-005), more than maxFailures 2",
	}, held)
	evs, err := st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: "WorkflowSet", Name: "reimage"}})
	require.NoError(t, err)
	require.Equal(t, "workflow set reimage paused: 3 machines failed (node-001, node-003, node-005), more than maxFailures 2; no machine starts until `tink workflowset resume reimage` or a bump of its run", evs[len(evs)-1].Message)
	require.Equal(t, state.ActorReconciler, evs[len(evs)-1].Actor)

	// The run is bumped: every machine runs again; node-007's first run,
	// left waiting by the pause, never starts.
	fsys["sets/reimage.yaml"].Data = append(fsys["sets/reimage.yaml"].Data, []byte("  run: 2\n")...)
	require.True(t, sync(t, r, "main@sha1:2", fsys).Applied)
	pending := runs(state.RunPending)
	require.Len(t, pending, 8)
	held = gate.Hold(ctx, pending)
	require.Equal(t, map[state.RunKey]string{
		{Workflow: "reimage-node-007", Number: 1}: "superseded by run 2 of workflow set reimage's new rollout; not started",
		{Workflow: "reimage-node-006", Number: 2}: "waits for its wave in workflow set reimage (at most 5 at a time)",
		{Workflow: "reimage-node-007", Number: 2}: "waits for its wave in workflow set reimage (at most 5 at a time)",
	}, held, "a new rollout, not paused")
	status, err := reconciler.WorkflowSetStatus(ctx, st, mustGet(t, st, state.ObjectKey{Kind: "WorkflowSet", Name: "reimage"}))
	require.NoError(t, err)
	require.False(t, status.Paused)
	require.Equal(t, int64(2), status.Run)
	require.Equal(t, 2, status.FailureBudget)
}

func mustGet(t *testing.T, st state.Store, key state.ObjectKey) *state.Object {
	t.Helper()
	o, err := st.GetObject(context.Background(), key)
	require.NoError(t, err)
	return o
}
