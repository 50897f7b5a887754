package workflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// soloTemplate runs one action on the workflow's own machine.
const soloTemplate = `version: "0.1"
name: solo
global_timeout: 600
tasks:
  - name: only
    worker: "{{.device_1}}"
    actions: [{name: a, image: a:v1, timeout: 60}]
`

// fleetMAC is machine i's MAC in soloFleet.
func fleetMAC(i int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256) }

// soloFleet declares n machines node-000... and, for each, a workflow
// prefix-000... of soloTemplate.
func soloFleet(n int, prefix string) fstest.MapFS {
	fsys := fstest.MapFS{"templates/solo.yaml": {Data: []byte(soloTemplate)}}
	for i := range n {
		fsys[fmt.Sprintf("hardware/node-%03d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil,
			"apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%03d}\nspec:\n  interfaces: [{dhcp: {mac: %q}}]\n", i, fleetMAC(i))}
		fsys[fmt.Sprintf("workflows/%s-%03d.yaml", prefix, i)] = &fstest.MapFile{Data: fmt.Appendf(nil,
			"apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s-%03d}\nspec: {templateRef: solo, hardwareRef: node-%03d, hardwareMap: {device_1: %q}}\n", prefix, i, i, fleetMAC(i))}
	}
	return fsys
}

// syncedStore is a Badger store with fsys applied as the first revision.
func syncedStore(t *testing.T, fsys fstest.MapFS, opts badger.Options) *badger.Store {
	t.Helper()
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(ctx, reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	return st
}

// TestOneStepStartsInCreationOrder: one step starts the runs of 150
// machines (renderings made and written in batches) exactly as if each
// run were rendered in creation order: a run whose tasks also run on
// another machine holds it against a younger run of that machine even
// when the younger one was rendered in a later batch (a-pair and
// b-149), and a younger multi-machine run waits for the older runs of its
// machines (c-late), never the reverse.
func TestOneStepStartsInCreationOrder(t *testing.T) {
	ctx := context.Background()
	const n = 150
	fsys := soloFleet(n, "b")
	fsys["templates/pair.yaml"] = &fstest.MapFile{Data: []byte(`version: "0.1"
name: pair
global_timeout: 600
tasks:
  - name: server
    worker: "{{.device_1}}"
    actions: [{name: a, image: a:v1, timeout: 60}]
  - name: peer
    worker: "{{.device_2}}"
    actions: [{name: b, image: b:v1, timeout: 60}]
`)}
	pair := func(name string, hw, other int) {
		fsys["workflows/"+name+".yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil,
			"apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\nspec: {templateRef: pair, hardwareRef: node-%03d, hardwareMap: {device_1: %q, device_2: %q}}\n", name, hw, fleetMAC(hw), fleetMAC(other))}
	}
	pair("a-pair", 0, n-1)  // oldest by name: holds node-000 and node-149
	pair("c-late", 50, 100) // youngest: both its machines have older runs
	st := syncedStore(t, fsys, badger.Options{NoSync: true})

	workflow.New(workflow.Config{Store: st}).Step(ctx)

	get := func(name string) *state.WorkflowRun {
		r, err := st.GetRun(ctx, state.RunKey{Workflow: name, Number: 1})
		require.NoError(t, err)
		return r
	}
	a := get("a-pair")
	require.Equal(t, state.RunRunning, a.State, a.Reason)
	require.Equal(t, []string{"node-149"}, a.Machines)
	require.Equal(t, "started: template pair rendered for node-000, 2 actions, tasks also on node-149", a.Reason)
	for name, reason := range map[string]string{
		"b-000":  "waits for a-pair#1, RUNNING on node-000",
		"b-149":  "waits for a-pair#1, RUNNING on node-149",
		"c-late": "waits for b-050#1, RUNNING on node-050",
	} {
		r := get(name)
		require.Equal(t, state.RunPending, r.State, name)
		require.Equal(t, reason, r.Reason, name)
	}
	for i := 1; i < n-1; i++ {
		r := get(fmt.Sprintf("b-%03d", i))
		require.Equal(t, state.RunRunning, r.State, "b-%03d: %s", i, r.Reason)
	}
}

// inFlight is a real store that counts the run writes in flight at once.
type inFlight struct {
	state.Store
	mu       sync.Mutex
	now, max int
}

func (s *inFlight) PutRun(ctx context.Context, actor state.Actor, run *state.WorkflowRun) (*state.WorkflowRun, error) {
	s.mu.Lock()
	s.now++
	s.max = max(s.max, s.now)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	return s.Store.PutRun(ctx, actor, run)
}

// TestOneStepWritesStartsTogether: the starts of one step are written
// together, so that they share the durable store's disk syncs (group
// commit) rather than wait for one sync each. 200 machines, each with a
// run to start, on a store that syncs every write.
func TestOneStepWritesStartsTogether(t *testing.T) {
	ctx := context.Background()
	const n = 200
	st := syncedStore(t, soloFleet(n, "w"), badger.Options{})

	counted := &inFlight{Store: st}
	workflow.New(workflow.Config{Store: counted}).Step(ctx)

	runs, err := state.AllRuns(ctx, st, state.RunQuery{States: []state.RunState{state.RunRunning}})
	require.NoError(t, err)
	require.Len(t, runs, n, "one step started every run")
	require.Greater(t, counted.max, 16, "run starts written together (most at once: %d)", counted.max)
}
