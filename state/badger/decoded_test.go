package badger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestSharedReads: reads with state.SharedReads (GetRuns among them)
// return what a plain read returns, after every kind of write (put, update, delete, a batch split
// over several transactions, a run update), while handing the same
// decoding to shared readers of an unchanged record; plain reads still get
// copies of their own.
func TestSharedReads(t *testing.T) {
	ctx := context.Background()
	shared := state.SharedReads(ctx)
	s := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})

	same := func(step string) {
		t.Helper()
		plain, err := state.AllObjects(ctx, s, state.ObjectQuery{})
		require.NoError(t, err)
		for range 2 { // the second from what the first kept
			got, err := state.AllObjects(shared, s, state.ObjectQuery{Limit: 7})
			require.NoError(t, err)
			require.Equal(t, plain, got, step)
			for _, o := range plain {
				one, err := s.GetObject(shared, o.Key())
				require.NoError(t, err)
				require.Equal(t, o, one, step)
			}
		}
		runs, err := state.AllRuns(ctx, s, state.RunQuery{})
		require.NoError(t, err)
		for range 2 {
			got, err := state.AllRuns(shared, s, state.RunQuery{Limit: 3})
			require.NoError(t, err)
			require.Equal(t, runs, got, step)
			keys := []state.RunKey{{Workflow: "wf-none", Number: 1}}
			for _, r := range runs {
				one, err := s.GetRun(shared, r.Key())
				require.NoError(t, err)
				require.Equal(t, r, one, step)
				keys = append(keys, r.Key())
			}
			many, err := s.GetRuns(shared, keys)
			require.NoError(t, err)
			require.Equal(t, append([]*state.WorkflowRun{nil}, runs...), many, step)
		}
	}

	b := &state.Batch{Actor: state.ActorGit}
	for i := range 20 {
		b.Put(hw(fmt.Sprintf("node-%02d", i), map[string]string{"rack": "r1"}), "")
	}
	for i := range 5 {
		b.Runs = append(b.Runs, &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%02d", i), Number: 1, State: state.RunPending})
	}
	_, err := s.Apply(ctx, b)
	require.NoError(t, err)
	same("created")

	// Shared readers get one decoding; a plain reader its own copy, which
	// it may change without anyone else seeing it.
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-03"}
	a, err := s.GetObject(shared, key)
	require.NoError(t, err)
	a2, err := s.GetObject(shared, key)
	require.NoError(t, err)
	require.Same(t, a, a2)
	p, err := s.GetObject(ctx, key)
	require.NoError(t, err)
	require.NotSame(t, a, p)
	own, err := s.GetObject(state.OwnReads(shared), key)
	require.NoError(t, err)
	require.NotSame(t, a, own, "OwnReads takes the promise back")
	p.Labels["rack"] = "changed by a plain reader"
	same("a plain reader changed its copy")

	cur, err := s.GetObject(ctx, key)
	require.NoError(t, err)
	cur.Labels = map[string]string{"rack": "r2"}
	_, err = s.PutObject(ctx, state.ActorGit, cur)
	require.NoError(t, err)
	require.NoError(t, s.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindHardware, Name: "node-05"}, 0))
	same("updated and deleted")
	_, err = s.GetObject(shared, state.ObjectKey{Kind: state.KindHardware, Name: "node-05"})
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))

	// A batch over the transaction limit (written in several) updates
	// every object.
	big := &state.Batch{Actor: state.ActorGit}
	all, err := state.AllObjects(ctx, s, state.ObjectQuery{})
	require.NoError(t, err)
	for _, o := range all {
		o.Annotations = map[string]string{"padding": incompressible(1024)}
		o.Spec = json.RawMessage(`{"interfaces":[{"dhcp":{"mac":"00:00:00:00:00:02"}}]}`)
		big.Put(o, "")
	}
	_, err = s.Apply(ctx, big)
	require.NoError(t, err)
	require.NotZero(t, s.Stats().Splits.Load(), "the batch was split")
	same("split batch")

	run, err := s.GetRun(ctx, state.RunKey{Workflow: "wf-02", Number: 1})
	require.NoError(t, err)
	run.Reason = "waits for node-01"
	_, err = s.PutRun(ctx, state.ActorReconciler, run)
	require.NoError(t, err)
	same("run updated")
}
