package badger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestOtherState: a run record's own state is read without decoding it,
// whatever its actions' states, namespace or packing; a record that does
// not read as expected is decoded, never skipped.
func TestOtherState(t *testing.T) {
	pending := []state.RunState{state.RunPending}
	for _, ns := range []string{"", "site-a"} {
		for _, st := range []state.RunState{state.RunPending, state.RunRunning, state.RunSuccess, state.RunFailed} {
			run := &state.WorkflowRun{Namespace: ns, Workflow: "wf-1", Number: 3, State: st, Reason: `"state":"PENDING"`,
				Actions: []state.RunAction{{Name: "a", State: state.RunPending}, {Name: "b", State: state.RunSuccess}}, CreatedAt: time.Unix(1, 0).UTC(), UpdatedAt: time.Unix(2, 0).UTC()}
			rec, ok := badger.AppendRun(nil, run)
			require.True(t, ok)
			js, err := json.Marshal(run)
			require.NoError(t, err)
			require.Equal(t, string(js), string(rec))
			require.Equal(t, st != state.RunPending, badger.OtherState(rec, pending), "%s in %q", st, ns)
			packed := badger.Pack(rec)
			require.NotEqual(t, rec, packed, "the record is packed")
			require.Equal(t, st != state.RunPending, badger.OtherState(packed, pending), "%s in %q, packed", st, ns)
		}
	}
	for _, rec := range []string{
		`{"workflow":"wf-1","number":1,"state":"RUNNIN\u0047"}`, // an escape: decoded
		`{"workflow":"wf-1","number":1}`,                        // no state: decoded
		`not json`,
	} {
		require.False(t, badger.OtherState([]byte(rec), pending), rec)
	}
}

// TestListRunsByStateReadsLittle: listing the waiting runs among many that
// are not (what the engine does every 30 s) finds exactly them, and does
// not decode the others: far less allocated per run scanned than one
// decoded run takes.
func TestListRunsByStateReadsLittle(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{NoSync: true})
	const n = 300
	for i := range n {
		r := &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%03d", i), Number: 1, State: state.RunRunning}
		if i%100 == 7 {
			r.State = state.RunPending
		}
		for a := range 10 * (i % 2) { // half plain, half large enough to be packed
			r.Actions = append(r.Actions, state.RunAction{Task: "t", Name: fmt.Sprintf("action-%d", a), Image: "quay.io/tinkerbell/actions/image2disk:v1.0.0", State: state.RunPending})
		}
		_, err := s.PutRun(ctx, state.ActorReconciler, r)
		require.NoError(t, err)
	}
	q := state.RunQuery{States: []state.RunState{state.RunPending}}
	page, err := s.ListRuns(ctx, q)
	require.NoError(t, err)
	var names []string
	for _, r := range page.Runs {
		names = append(names, r.Workflow)
	}
	require.Equal(t, []string{"wf-007", "wf-107", "wf-207"}, names)
	// Bytes, not allocations: Badger's iterator allocates a few small
	// items per key either way; a decoded run is kilobytes.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const calls = 5
	for range calls {
		_, err := s.ListRuns(ctx, q)
		require.NoError(t, err)
	}
	runtime.ReadMemStats(&after)
	perRun := float64(after.TotalAlloc-before.TotalAlloc) / calls / n
	t.Logf("%.0f bytes allocated per run scanned to list 3 of %d", perRun, n)
	require.Less(t, perRun, 1000.0, "the runs in other states are not decoded")
}
