package reconciler_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// MustOpenStore opens a real Badger store in a temp dir.
func MustOpenStore(tb testing.TB) *badger.Store {
	tb.Helper()
	st, err := badger.Open(context.Background(), tb.TempDir(), badger.Options{NoSync: true})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

const hwFmt = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %s
spec:
  bmc: {address: 10.0.0.%d, credentialsRef: bmc-%s}
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:%02d", ip: {address: 10.0.1.%d, netmask: 255.255.255.0}}
`

const tmplFmt = `version: "0.1"
name: %s
global_timeout: 600
tasks:
  - name: install
    worker: "{{.device_1}}"
    actions:
      - name: wipe
        image: wipe:v1
        timeout: %d
      - name: write
        image: write:v1
        timeout: 60
`

const wfFmt = `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: %s
spec:
  templateRef: %s
  hardwareRef: %s
  hardwareMap: {device_1: "52:54:00:00:00:%02d"}
  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}
%s`

// repo builds a repository of n machines, one template and one workflow
// per machine.
func repo(n int) fstest.MapFS {
	fsys := fstest.MapFS{"templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmplFmt, "provision", 600))}}
	for i := 1; i <= n; i++ {
		hw := fmt.Sprintf("node-%02d", i)
		fsys["hardware/"+hw+".yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(hwFmt, hw, i, hw, i, i))}
		fsys["workflows/"+hw+".yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(wfFmt, "wf-"+hw, "provision", hw, i, ""))}
	}
	return fsys
}

func clone(fsys fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range fsys {
		c := *v
		out[k] = &c
	}
	return out
}

// hashed gives a MapFS the content hashes a Git snapshot has, so that
// syncs in tests go through the caches a Git source's syncs use.
type hashed struct{ fstest.MapFS }

// FileHash returns the SHA-256 of the file's content.
func (h hashed) FileHash(name string) (string, bool) {
	f, ok := h.MapFS[name]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(f.Data)
	return hex.EncodeToString(sum[:]), true
}

func sync(t *testing.T, r *reconciler.Reconciler, rev string, fsys fstest.MapFS) *reconciler.Outcome {
	t.Helper()
	out, err := r.Sync(context.Background(), reconciler.Snapshot{Revision: rev, FS: hashed{fsys}})
	require.NoError(t, err)
	return out
}

func runsOf(t *testing.T, st state.Store, wf string) []*state.WorkflowRun {
	t.Helper()
	page, err := st.ListRuns(context.Background(), state.RunQuery{Workflow: wf})
	require.NoError(t, err)
	return page.Runs
}

// TestSyncScenario: a valid revision applies; an invalid one changes
// nothing but the status; a fix applies; template changes re-run nothing;
// a workflow spec change starts a new run.
// TestSyncTimesItsPhases: a sync says how long it spent loading,
// planning and writing, parts of its whole duration, whether it changed
// anything or only recorded the sync.
func TestSyncTimesItsPhases(t *testing.T) {
	r := reconciler.New(reconciler.Config{Store: MustOpenStore(t)})
	out := sync(t, r, "main@sha1:1111", repo(20))
	require.True(t, out.Changed)
	require.Positive(t, out.LoadTime)
	require.Positive(t, out.PlanTime)
	require.Positive(t, out.ApplyTime)
	require.LessOrEqual(t, out.LoadTime+out.PlanTime+out.ApplyTime, out.Duration)
	out = sync(t, r, "main@sha1:1111", repo(20))
	require.False(t, out.Changed)
	require.Positive(t, out.LoadTime)
	require.Positive(t, out.ApplyTime, "the sync status is written")
	require.LessOrEqual(t, out.LoadTime+out.PlanTime+out.ApplyTime, out.Duration)
}

func TestSyncScenario(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})

	v1 := repo(2)
	out := sync(t, r, "main@sha1:1111", v1)
	require.True(t, out.Applied)
	require.Equal(t, 5, out.Plan.Count(reconciler.OpCreate))
	require.Equal(t, []string{
		"workflow wf-node-01 will start: node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds",
		"workflow wf-node-02 will start: node-02 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds",
	}, out.Plan.Consequences())
	runs := runsOf(t, st, "wf-node-01")
	require.Len(t, runs, 1)
	require.Equal(t, state.RunPending, runs[0].State)
	require.Equal(t, "node-01", runs[0].Hardware)
	status, err := st.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:1111", status.LastAppliedRevision)
	require.Empty(t, status.Errors)
	hw, err := st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-01"})
	require.NoError(t, err)
	require.Equal(t, state.SourceGit, hw.Source)
	require.Equal(t, "main@sha1:1111", hw.Revision)
	require.Equal(t, "hardware/node-01.yaml", hw.File)
	before := hw.ResourceVersion

	// The same revision again writes nothing.
	out = sync(t, r, "main@sha1:1111", v1)
	require.True(t, out.Plan.Empty())
	require.Equal(t, 5, out.Plan.Unchanged)

	// A broken commit: recorded, nothing applied.
	bad := clone(v1)
	bad["hardware/node-02.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v1["hardware/node-02.yaml"].Data), `"52:54:00:00:00:02"`, `"zz"`, 1))}
	bad["hardware/node-03.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(hwFmt, "node-03", 3, "node-03", 3, 3))}
	out = sync(t, r, "main@sha1:2222", bad)
	require.False(t, out.Applied)
	require.NotEmpty(t, out.Errors)
	status, err = st.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:2222", status.LastAttemptedRevision)
	require.Equal(t, "main@sha1:1111", status.LastAppliedRevision)
	require.Equal(t, "hardware/node-02.yaml", status.Errors[0].File)
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-03"})
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err), "nothing of the broken commit is applied")
	evs, err := st.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, state.EventError, evs[0].Type)
	require.Contains(t, evs[0].Message, "main@sha1:2222 not applied: 1 error(s); main@sha1:1111 stays in effect. First: hardware/node-02.yaml:9:")

	// The fix applies.
	fixed := clone(v1)
	fixed["hardware/node-03.yaml"] = bad["hardware/node-03.yaml"]
	out = sync(t, r, "main@sha1:3333", fixed)
	require.True(t, out.Applied)
	require.Equal(t, 1, out.Plan.Count(reconciler.OpCreate))
	status, err = st.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:3333", status.LastAppliedRevision)
	require.Empty(t, status.Errors)
	hw, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-01"})
	require.NoError(t, err)
	require.Equal(t, before, hw.ResourceVersion, "unchanged objects are not rewritten")

	// A template change re-runs nothing.
	tmplChange := clone(fixed)
	tmplChange["templates/provision.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(tmplFmt, "provision", 900))}
	out = sync(t, r, "main@sha1:4444", tmplChange)
	require.True(t, out.Applied)
	require.Equal(t, []string{"template provision changed: 2 workflows use it; none will re-run"}, out.Plan.Consequences())
	require.Len(t, runsOf(t, st, "wf-node-01"), 1)

	// Bumping run asks for a new run; run 1 is still PENDING, so run 2 waits.
	bump := clone(tmplChange)
	bump["workflows/node-01.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(wfFmt, "wf-node-01", "provision", "node-01", 1, "  run: 2\n"))}
	out = sync(t, r, "main@sha1:5555", bump)
	require.True(t, out.Applied)
	require.Equal(t, []string{"workflow wf-node-01 will run again (run 2) once run 1, now PENDING, ends: node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"}, out.Plan.Consequences())
	runs = runsOf(t, st, "wf-node-01")
	require.Len(t, runs, 2)
	require.Equal(t, 2, runs[1].Number)
	require.Equal(t, "spec changed; waits for run 1 to end", runs[1].Reason)
}

// TestPrune: off by default; on, it removes what left Git but never
// hardware with an active run, and it refuses to delete most of the fleet.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	v1 := repo(4)
	sync(t, reconciler.New(reconciler.Config{Store: st}), "r1", v1)

	gone := clone(v1)
	delete(gone, "hardware/node-04.yaml")
	delete(gone, "workflows/node-04.yaml")
	out := sync(t, reconciler.New(reconciler.Config{Store: st}), "r2", gone)
	require.Equal(t, 2, out.Plan.Count(reconciler.OpOrphaned))
	require.Contains(t, out.Plan.Consequences(), "hardware node-04 is no longer in Git; kept because prune is off")
	_, err := st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.NoError(t, err)

	pruner := reconciler.New(reconciler.Config{Store: st, Plan: reconciler.Options{Prune: true}})
	out = sync(t, pruner, "r3", gone)
	// node-04's workflow has a PENDING run: neither it nor its hardware go.
	require.Contains(t, out.Plan.Consequences(), "hardware node-04 is no longer in Git but has an active run (wf-node-04#1 PENDING); it is kept")
	require.Contains(t, out.Plan.Consequences(), "workflow wf-node-04 is no longer in Git but run 1 is PENDING; it is kept")
	require.Equal(t, 0, out.Plan.Count(reconciler.OpDelete))

	// Finish that run; now both go.
	run, err := st.GetRun(ctx, state.RunKey{Workflow: "wf-node-04", Number: 1})
	require.NoError(t, err)
	run.State = state.RunSuccess
	_, err = st.PutRun(ctx, state.ActorReconciler, run)
	require.NoError(t, err)
	out = sync(t, pruner, "r4", gone)
	require.True(t, out.Applied)
	require.Equal(t, 2, out.Plan.Count(reconciler.OpDelete))
	require.Contains(t, out.Plan.Consequences(), "hardware node-04 will be removed (prune)")
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))

	// `git rm -r hardware workflows` once every run has ended: refused.
	for _, wf := range []string{"wf-node-01", "wf-node-02", "wf-node-03"} {
		run, err := st.GetRun(ctx, state.RunKey{Workflow: wf, Number: 1})
		require.NoError(t, err)
		run.State = state.RunSuccess
		_, err = st.PutRun(ctx, state.ActorReconciler, run)
		require.NoError(t, err)
	}
	wiped := fstest.MapFS{"templates/provision.yaml": v1["templates/provision.yaml"]}
	out = sync(t, pruner, "r5", wiped)
	require.False(t, out.Applied)
	require.Contains(t, out.Plan.Blocked, "the plan deletes 6 of 7 Git-managed objects, more than 50%")
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-01"})
	require.NoError(t, err, "nothing deleted")
	status, err := st.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "r4", status.LastAppliedRevision)
	require.Equal(t, "r5", status.LastAttemptedRevision)

	// API objects are never pruned.
	_, err = st.PutObject(ctx, state.APIUser("alice"), &state.Object{Kind: "Hardware", Name: "adhoc", Source: state.SourceAPI, Spec: []byte(`{}`)})
	require.NoError(t, err)
	out = sync(t, pruner, "r6", gone)
	for _, c := range out.Plan.Changes {
		require.NotEqual(t, "adhoc", c.Key.Name)
	}
}

// TestOverride: an API change to a Git object lasts until Git changes that
// object again.
func TestOverride(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	v1 := repo(1)
	sync(t, r, "r1", v1)
	key := state.ObjectKey{Kind: "Hardware", Name: "node-01"}
	hw, err := st.GetObject(ctx, key)
	require.NoError(t, err)
	gitSpec := hw.Spec
	hw.Spec = []byte(strings.Replace(string(hw.Spec), "10.0.1.1", "10.0.1.99", 1))
	hw.Override = &state.Override{By: state.APIUser("alice"), At: time.Now(), GitSpec: gitSpec}
	_, err = st.PutObject(ctx, state.APIUser("alice"), hw)
	require.NoError(t, err)

	// Another commit that leaves node-01 alone keeps the override.
	v2 := clone(v1)
	v2["templates/provision.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(tmplFmt, "provision", 700))}
	out := sync(t, r, "r2", v2)
	require.True(t, out.Applied)
	hw, err = st.GetObject(ctx, key)
	require.NoError(t, err)
	require.NotNil(t, hw.Override)
	require.Contains(t, string(hw.Spec), "10.0.1.99")

	// Git changes node-01: Git wins, the override is gone.
	v3 := clone(v2)
	v3["hardware/node-01.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v1["hardware/node-01.yaml"].Data), "10.0.0.1,", "10.0.0.50,", 1))}
	out = sync(t, r, "r3", v3)
	require.Contains(t, out.Plan.Consequences(), "Git changes hardware node-01 again: the API override by alice is dropped")
	hw, err = st.GetObject(ctx, key)
	require.NoError(t, err)
	require.Nil(t, hw.Override)
	require.Contains(t, string(hw.Spec), "10.0.1.1\"")
	require.Contains(t, string(hw.Spec), "10.0.0.50")
}

// TestPruneFromTinkCue: a repository opts in to prune in its tink.cue
// (the server's --prune off), sets its own guard share, and opts out again.
func TestPruneFromTinkCue(t *testing.T) {
	ctx := context.Background()
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st}) // the server's prune is off
	v1 := repo(4)
	sync(t, r, "r1", v1)
	for _, wf := range []string{"wf-node-01", "wf-node-02", "wf-node-03", "wf-node-04"} {
		run, err := st.GetRun(ctx, state.RunKey{Workflow: wf, Number: 1})
		require.NoError(t, err)
		run.State = state.RunSuccess
		_, err = st.PutRun(ctx, state.ActorReconciler, run)
		require.NoError(t, err)
	}

	// prune on, at most 20% of 9 objects per commit: deleting node-04 and
	// its workflow (2 of 9, 22%) is refused.
	gone := clone(v1)
	delete(gone, "hardware/node-04.yaml")
	delete(gone, "workflows/node-04.yaml")
	gone["tink.cue"] = &fstest.MapFile{Data: []byte("prune: {enabled: true, maxShare: 0.2}\n")}
	out := sync(t, r, "r2", gone)
	require.False(t, out.Applied)
	require.Contains(t, out.Plan.Blocked, "the plan deletes 2 of 9 Git-managed objects, more than 20%")

	// The repository raises its guard: both go.
	gone["tink.cue"] = &fstest.MapFile{Data: []byte("prune: {enabled: true, maxShare: 0.5}\n")}
	out = sync(t, r, "r3", gone)
	require.True(t, out.Applied, "%v", out.Plan.Blocked)
	require.Contains(t, out.Plan.Consequences(), "hardware node-04 will be removed (prune)")
	_, err := st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))

	// Opted out: a removed file stays on the server even with --prune on.
	pruner := reconciler.New(reconciler.Config{Store: st, Plan: reconciler.Options{Prune: true}})
	kept := clone(gone)
	delete(kept, "hardware/node-03.yaml")
	delete(kept, "workflows/node-03.yaml")
	kept["tink.cue"] = &fstest.MapFile{Data: []byte("prune: enabled: false\n")}
	out = sync(t, pruner, "r4", kept)
	require.True(t, out.Applied)
	require.Contains(t, out.Plan.Consequences(), "hardware node-03 is no longer in Git; kept because prune is off")

	// A maxShare out of range is an error naming tink.cue.
	kept["tink.cue"] = &fstest.MapFile{Data: []byte("prune: {enabled: true, maxShare: 2}\n")}
	out = sync(t, pruner, "r5", kept)
	require.False(t, out.Applied)
	require.NotEmpty(t, out.Errors)
	require.Equal(t, "tink.cue", out.Errors[0].File)
}
