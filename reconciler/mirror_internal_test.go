package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

func openStore(tb testing.TB, opts badger.Options) *badger.Store {
	tb.Helper()
	opts.NoSync = true
	st, err := badger.Open(context.Background(), tb.TempDir(), opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// fleet is n machines with a workflow each, as a hashed file system.
func fleet(n int) fstest.MapFS {
	fsys := fstest.MapFS{"templates/provision.yaml": {Data: []byte(`version: "0.1"
name: provision
global_timeout: 600
tasks:
  - name: install
    worker: "{{.device_1}}"
    actions:
      - name: wipe
        image: wipe:v1
        timeout: 60
`)}}
	for i := 1; i <= n; i++ {
		fsys[fmt.Sprintf("hardware/node-%02d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-%02d}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:%02d"}}]
`, i, i))}
		fsys[fmt.Sprintf("workflows/wf-%02d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wf-%02d}
spec:
  templateRef: provision
  hardwareRef: node-%02d
  hardwareMap: {device_1: "52:54:00:00:00:%02d"}
`, i, i, i))}
	}
	return fsys
}

func without(fsys fstest.MapFS, names ...string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range fsys {
		out[k] = v
	}
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// snap is a snapshot whose files carry hashes, as a Git snapshot's do.
func snap(rev string, fsys fstest.MapFS) Snapshot {
	hashes := map[string]string{}
	for name, f := range fsys {
		hashes[name] = fmt.Sprintf("%x", f.Data)
	}
	return Snapshot{Revision: rev, FS: hashFS{FS: fsys, hashes: hashes}}
}

func mustSync(t *testing.T, r *Reconciler, s Snapshot) *Outcome {
	t.Helper()
	out, err := r.Sync(context.Background(), s)
	require.NoError(t, err)
	require.Empty(t, out.Errors)
	require.True(t, out.Applied, "%s", out.Plan.FormatText())
	return out
}

// TestMirrorReadsOnlyWhatChanged: the objects are listed once; afterwards
// the reconciler's own writes are taken from Apply's result and only the
// objects other writers changed are read again.
func TestMirrorReadsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, badger.Options{})
	r := New(Config{Store: st})
	v1 := fleet(3)
	mustSync(t, r, snap("r1", v1))
	require.Equal(t, 1, r.actual.reloads)
	require.Equal(t, 0, r.actual.fetched)

	out := mustSync(t, r, snap("r1", v1))
	require.True(t, out.Plan.Empty())
	require.Equal(t, 1, r.actual.reloads)
	require.Equal(t, 0, r.actual.fetched, "its own writes are not read back")

	// Runs change (an engine at work): no object is read.
	run, err := st.GetRun(ctx, state.RunKey{Workflow: "wf-01", Number: 1})
	require.NoError(t, err)
	run.State = state.RunRunning
	_, err = st.PutRun(ctx, state.ActorReconciler, run)
	require.NoError(t, err)
	// Another writer changes one object: that one is read.
	hw, err := st.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "node-02"})
	require.NoError(t, err)
	hw.Status = []byte(`{"allowPXE":false}`)
	_, err = st.PutObject(ctx, state.ActorReconciler, hw)
	require.NoError(t, err)
	out = mustSync(t, r, snap("r2", without(v1, "workflows/wf-03.yaml")))
	require.Equal(t, 1, out.Plan.Count(OpOrphaned))
	require.Equal(t, 1, r.actual.reloads)
	require.Equal(t, 1, r.actual.fetched)
	require.JSONEq(t, `{"allowPXE":false}`, string(r.actual.objects[hw.Key()].Status))
	requireMirrorsStore(t, r, st)
}

// TestMirrorAfterRetention: events removed before the mirror read them
// make it list the objects again.
func TestMirrorAfterRetention(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, badger.Options{Retention: state.Retention{MaxEvents: 3}, CompactInterval: -1})
	r := New(Config{Store: st})
	v1 := fleet(3)
	mustSync(t, r, snap("r1", v1))
	require.NoError(t, st.DeleteObject(ctx, state.APIUser("alice"), state.ObjectKey{Kind: state.KindHardware, Name: "node-01"}, 0))
	for i := 0; i < 5; i++ {
		_, err := st.Apply(ctx, &state.Batch{Actor: "test", Events: []state.Event{{Type: state.EventBMC, Message: "noise"}}})
		require.NoError(t, err)
	}
	n, err := st.CompactEvents(ctx)
	require.NoError(t, err)
	require.Positive(t, n)
	out := mustSync(t, r, snap("r1", v1))
	require.Equal(t, 2, r.actual.reloads)
	require.Equal(t, 1, out.Plan.Count(OpCreate), "the deletion is seen")
	requireMirrorsStore(t, r, st)
}

// racingStore makes a write of its own just before the reconciler's
// first Apply, as an API caller might.
type racingStore struct {
	state.Store
	race func()
}

func (s *racingStore) Apply(ctx context.Context, b *state.Batch) (*state.Result, error) {
	if s.race != nil {
		race := s.race
		s.race = nil
		race()
	}
	return s.Store.Apply(ctx, b)
}

// TestMirrorAfterConflict: when the store moved between plan and apply,
// the plan is made again from the objects listed afresh.
func TestMirrorAfterConflict(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, badger.Options{})
	rs := &racingStore{Store: st}
	r := New(Config{Store: rs})
	v1 := fleet(2)
	mustSync(t, r, snap("r1", v1))
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-02"}
	rs.race = func() {
		hw, err := st.GetObject(ctx, key)
		require.NoError(t, err)
		hw.Spec = []byte(strings.Replace(string(hw.Spec), "00:02", "00:99", 1))
		_, err = st.PutObject(ctx, state.APIUser("alice"), hw)
		require.NoError(t, err)
	}
	v2 := fleet(2)
	v2["hardware/node-02.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v1["hardware/node-02.yaml"].Data), "node-02}", "node-02, labels: {rack: r2}}", 1))}
	mustSync(t, r, snap("r2", v2))
	require.Equal(t, 2, r.actual.reloads, "listed again after the conflict")
	hw, err := st.GetObject(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "r2", hw.Labels["rack"])
	require.Contains(t, string(hw.Spec), "00:02", "Git's spec wins over the racing write")
	requireMirrorsStore(t, r, st)
}

// requireMirrorsStore checks the mirror against a listing of the store.
func requireMirrorsStore(t *testing.T, r *Reconciler, st state.Store) {
	t.Helper()
	page, err := st.ListObjects(context.Background(), state.ObjectQuery{})
	require.NoError(t, err)
	// As JSON: an object from Apply's result and the same object read
	// back differ only in their times' location.
	want := map[state.ObjectKey]string{}
	for _, o := range page.Objects {
		b, err := json.Marshal(o)
		require.NoError(t, err)
		want[o.Key()] = string(b)
	}
	got := map[state.ObjectKey]string{}
	require.NoError(t, r.actual.view(context.Background(), st, func(objects map[state.ObjectKey]*state.Object) {
		for k, o := range objects {
			b, err := json.Marshal(o)
			require.NoError(t, err)
			got[k] = string(b)
		}
	}))
	require.Equal(t, want, got)
}

// allActual is what MakePlan was given before the mirror: every object
// and every run that has not ended.
func allActual(t *testing.T, st state.Store) Actual {
	t.Helper()
	ctx := context.Background()
	objs, err := st.ListObjects(ctx, state.ObjectQuery{})
	require.NoError(t, err)
	runs, err := st.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunPending, state.RunPreparing, state.RunRunning}})
	require.NoError(t, err)
	return Actual{Objects: objs.Objects, Runs: runs.Runs}
}

// TestPlanReadsTheRunsItNeeds: a sync reads only the runs of what it
// changes; its plan is the one made from every object and every active
// run.
func TestPlanReadsTheRunsItNeeds(t *testing.T) {
	ctx := context.Background()
	base := fleet(4)
	bump := func(fsys fstest.MapFS, wf string) fstest.MapFS {
		out := without(fsys)
		name := "workflows/" + wf + ".yaml"
		out[name] = &fstest.MapFile{Data: append(append([]byte{}, fsys[name].Data...), "  run: 2\n"...)}
		return out
	}
	cases := []struct {
		name    string
		desired fstest.MapFS
		opts    Options
	}{
		{"unchanged", base, Options{}},
		{"re-run while the run is active", bump(base, "wf-01"), Options{}},
		{"workflow removed, prune", without(base, "workflows/wf-02.yaml"), Options{Prune: true}},
		{"hardware removed, its run active, prune", without(base, "hardware/node-03.yaml", "workflows/wf-03.yaml"), Options{Prune: true}},
		{"hardware removed, prune off", without(base, "hardware/node-03.yaml", "workflows/wf-03.yaml"), Options{}},
		{"new workflow", func() fstest.MapFS {
			f := fleet(5)
			delete(f, "hardware/node-05.yaml")
			f["workflows/wf-05.yaml"] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(f["workflows/wf-05.yaml"].Data), "node-05", "node-04"))}
			f["workflows/wf-05.yaml"].Data = []byte(strings.ReplaceAll(string(f["workflows/wf-05.yaml"].Data), "00:05", "00:04"))
			return f
		}(), Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, badger.Options{})
			r := New(Config{Store: st, Plan: c.opts})
			mustSync(t, r, snap("r1", base))
			// wf-04 has ended; the others are PENDING or RUNNING.
			run, err := st.GetRun(ctx, state.RunKey{Workflow: "wf-04", Number: 1})
			require.NoError(t, err)
			run.State = state.RunSuccess
			_, err = st.PutRun(ctx, state.ActorReconciler, run)
			require.NoError(t, err)

			s := snap("r2", c.desired)
			got, errs, err := r.PlanSnapshot(ctx, s)
			require.NoError(t, err)
			require.Empty(t, errs)
			set, err := r.loader.Load(ctx, s.FS)
			require.NoError(t, err)
			want, err := MakePlan(set, "r2", allActual(t, st), c.opts)
			require.NoError(t, err)
			require.Equal(t, want.FormatText(), got.FormatText())
			require.Equal(t, want.runs, got.runs)
		})
	}
}

// TestPlanOfPullRequestKeepsCaches: planning a repository without hashes
// (a pull request's, from a directory) leaves the caches of the one being
// followed alone: the next sync encodes only what changed.
func TestPlanOfPullRequestKeepsCaches(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, badger.Options{})
	r := New(Config{Store: st})
	v1 := fleet(3)
	mustSync(t, r, snap("r1", v1))
	require.Equal(t, int64(7), r.desired.encoded.Load())

	pr := without(v1)
	pr["hardware/node-04.yaml"] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(strings.ReplaceAll(string(v1["hardware/node-03.yaml"].Data), "node-03", "node-04"), "00:03", "00:04"))}
	p, errs, err := r.PlanSnapshot(ctx, Snapshot{Revision: "pr-1", FS: pr})
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Equal(t, 1, p.Count(OpCreate))
	require.Equal(t, int64(7), r.desired.encoded.Load(), "the pull request's objects are not cached")

	v2 := without(v1)
	v2["hardware/node-01.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v1["hardware/node-01.yaml"].Data), "node-01}", "node-01, labels: {rack: r1}}", 1))}
	out := mustSync(t, r, snap("r2", v2))
	require.Equal(t, 1, out.Plan.Count(OpUpdate))
	require.Equal(t, int64(8), r.desired.encoded.Load(), "only the changed object is encoded")
}

// TestMirrorUnderConcurrentUse: syncs, plans (as the API's diff makes
// them) and API writes at once; the mirror ends equal to the store.
func TestMirrorUnderConcurrentUse(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, badger.Options{})
	r := New(Config{Store: st})
	v1 := fleet(4)
	mustSync(t, r, snap("r0", v1))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 1; i <= 5; i++ {
			v := without(v1)
			v["hardware/node-01.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v1["hardware/node-01.yaml"].Data), "node-01}", fmt.Sprintf("node-01, labels: {n: %q}}", fmt.Sprint(i)), 1))}
			_, err := r.Sync(ctx, snap(fmt.Sprintf("r%d", i), v))
			assert.NoError(t, err)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			_, _, err := r.PlanSnapshot(ctx, snap("pr", v1))
			assert.NoError(t, err)
			_, _, err = r.PlanSnapshot(ctx, Snapshot{Revision: "pr", FS: v1})
			assert.NoError(t, err)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			_, err := st.PutObject(ctx, state.APIUser("alice"), &state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("adhoc-%d", i), Source: state.SourceAPI, Spec: []byte(`{}`)})
			assert.NoError(t, err)
		}
	}()
	wg.Wait()
	requireMirrorsStore(t, r, st)
}
