package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/metrics/metricstest"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// metricsFixture opens the store in dir with the server's metrics on a
// registry of their own, the inventory following the store until the test
// ends.
func metricsFixture(t *testing.T, dir string) (*badger.Store, *Collectors, *prometheus.Registry) {
	t.Helper()
	st, err := badger.Open(context.Background(), dir, badger.Options{NoSync: true})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	sm, err := New(reg, st, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sm.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, st.Close())
	})
	return st, sm, reg
}

func hardwareObject(name string, src state.Source) *state.Object {
	o := &state.Object{Kind: state.KindHardware, Name: name, Source: src, Spec: []byte(`{}`)}
	if src == state.SourceGit {
		o.Revision = "main@sha1:1"
	}
	return o
}

// TestMetricsInventory: tink_objects and tink_workflow_runs follow the
// event log: objects written by Git and through the API, an API object
// that Git takes over, deletions, and runs moving through their states,
// those written before the server started included.
func TestMetricsInventory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := badger.Open(ctx, dir, badger.Options{NoSync: true})
	require.NoError(t, err)
	// Before the metrics start: one Git hardware and one finished run.
	b := &state.Batch{Actor: state.ActorGit}
	b.Put(hardwareObject("old", state.SourceGit), "")
	b.Runs = []*state.WorkflowRun{{Workflow: "wf", Number: 1, State: state.RunSuccess}}
	_, err = st.Apply(ctx, b)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	st, _, reg := metricsFixture(t, dir)
	want := func(kindSource map[string]float64, runs map[string]float64) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			f := metricstest.Gather(t, reg)
			for k, v := range kindSource {
				kind, src, _ := strings.Cut(k, "/")
				assert.Equal(c, v, f.Value("tink_objects", "kind", kind, "source", src), k)
			}
			for s, v := range runs {
				assert.Equal(c, v, f.Value("tink_workflow_runs", "state", s), s)
			}
		}, 5*time.Second, 10*time.Millisecond)
	}
	want(map[string]float64{"Hardware/git": 1, "Hardware/api": 0, "Template/git": 0}, map[string]float64{"SUCCESS": 1, "PENDING": 0})

	// Git adds two; the API adds one.
	b = &state.Batch{Actor: state.ActorGit}
	b.Put(hardwareObject("g1", state.SourceGit), "")
	b.Put(hardwareObject("g2", state.SourceGit), "")
	_, err = st.Apply(ctx, b)
	require.NoError(t, err)
	a1, err := st.PutObject(ctx, state.APIUser("alice"), hardwareObject("a1", state.SourceAPI))
	require.NoError(t, err)
	want(map[string]float64{"Hardware/git": 3, "Hardware/api": 1}, nil)

	// Git takes the API object over, and prunes one of its own.
	b = &state.Batch{Actor: state.ActorGit}
	over := hardwareObject("a1", state.SourceGit)
	over.ResourceVersion = a1.ResourceVersion
	b.Put(over, "")
	b.Delete(state.ObjectKey{Kind: state.KindHardware, Name: "g2"}, 0, "")
	_, err = st.Apply(ctx, b)
	require.NoError(t, err)
	want(map[string]float64{"Hardware/git": 3, "Hardware/api": 0}, nil)

	// A run goes PENDING, RUNNING, FAILED.
	r, err := st.PutRun(ctx, state.ActorGit, &state.WorkflowRun{Workflow: "wf", Number: 2, State: state.RunPending})
	require.NoError(t, err)
	want(nil, map[string]float64{"PENDING": 1, "SUCCESS": 1})
	r.State = state.RunRunning
	r, err = st.PutRun(ctx, state.ActorReconciler, r)
	require.NoError(t, err)
	want(nil, map[string]float64{"PENDING": 0, "RUNNING": 1})
	r.State = state.RunFailed
	_, err = st.PutRun(ctx, state.ActorReconciler, r)
	require.NoError(t, err)
	want(nil, map[string]float64{"RUNNING": 0, "FAILED": 1, "SUCCESS": 1})
}

// TestMetricsWorkersBounded: a worker's last-seen time is exported while
// its hardware exists, and dropped once the hardware is deleted, so the
// label set cannot grow past the fleet.
func TestMetricsWorkersBounded(t *testing.T) {
	ctx := context.Background()
	st, sm, reg := metricsFixture(t, t.TempDir())
	for _, name := range []string{"node-01", "node-02"} {
		_, err := st.PutObject(ctx, state.ActorGit, hardwareObject(name, state.SourceGit))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return metricstest.Gather(t, reg).Value("tink_objects", "kind", "Hardware", "source", "git") == 2
	}, 5*time.Second, 10*time.Millisecond)
	at := time.Unix(1_700_000_000, 500_000_000)
	sm.WorkerSeen("", "node-01", at)
	sm.WorkerSeen("", "node-02", at.Add(-time.Minute))
	f := metricstest.Gather(t, reg)
	require.Equal(t, 1_700_000_000.5, f.Value("tink_worker_last_seen_seconds", "worker", "node-01"))
	require.Equal(t, 1_699_999_940.5, f.Value("tink_worker_last_seen_seconds", "worker", "node-02"))

	require.NoError(t, st.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindHardware, Name: "node-02"}, 0))
	require.Eventually(t, func() bool { return len(metricstest.Gather(t, reg).Series("tink_worker_last_seen_seconds")) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, metricstest.Gather(t, reg).Series("tink_worker_last_seen_seconds", "worker", "node-02"))
	sm.workers.mu.RLock()
	require.Len(t, sm.workers.seen, 1, "forgotten, not just hidden")
	sm.workers.mu.RUnlock()
}

// TestMetricsReconcileHooks: every sync result is counted and timed; the
// revision info carries only the revision in effect, and the apply time
// moves only when a revision is applied, not when one is found unchanged
// or rejected.
func TestMetricsReconcileHooks(t *testing.T) {
	_, sm, reg := metricsFixture(t, t.TempDir())
	f := metricstest.Gather(t, reg)
	for _, r := range []string{"applied", "unchanged", "invalid", "blocked", "failed"} {
		require.Equal(t, 0.0, f.Value("tink_reconcile_total", "result", r), "%s starts at 0", r)
	}
	require.Empty(t, f.Series("tink_last_applied_revision_info"), "nothing applied yet")
	require.Nil(t, f["tink_last_applied_timestamp_seconds"])

	sm.Reconciled(reconciler.SyncApplied, "main@sha1:a", 2*time.Second)
	f = metricstest.Gather(t, reg)
	require.Equal(t, 1.0, f.Value("tink_reconcile_total", "result", "applied"))
	require.Equal(t, 2.0, f.Series("tink_reconcile_duration_seconds", "result", "applied")[0].Histogram.GetSampleSum())
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	first := f.Value("tink_last_applied_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), first, 2)

	time.Sleep(20 * time.Millisecond)
	sm.Reconciled(reconciler.SyncInvalid, "main@sha1:b", time.Second)
	sm.Reconciled(reconciler.SyncBlocked, "main@sha1:c", time.Second)
	sm.Reconciled(reconciler.SyncFailed, "", time.Second)
	sm.Reconciled(reconciler.SyncUnchanged, "main@sha1:a", time.Second)
	f = metricstest.Gather(t, reg)
	require.Len(t, f.Series("tink_last_applied_revision_info"), 1)
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	require.Equal(t, first, f.Value("tink_last_applied_timestamp_seconds"))
	for _, r := range []string{"invalid", "blocked", "failed", "unchanged"} {
		require.Equal(t, 1.0, f.Value("tink_reconcile_total", "result", r), r)
	}

	sm.Reconciled(reconciler.SyncApplied, "main@sha1:d", time.Second)
	f = metricstest.Gather(t, reg)
	require.Len(t, f.Series("tink_last_applied_revision_info"), 1, "the old revision is gone")
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:d"))
	require.Greater(t, f.Value("tink_last_applied_timestamp_seconds"), first)

	sm.GitSynced(time.Second, nil)
	sm.GitSynced(time.Second, fmt.Errorf("no route to host"))
	sm.BMCCalled("power cycle", time.Second, false)
	f = metricstest.Gather(t, reg)
	require.Equal(t, 2.0, f.Value("tink_git_fetch_duration_seconds"))
	require.Equal(t, 1.0, f.Value("tink_git_fetch_failures_total"))
	require.Equal(t, 1.0, f.Value("tink_bmc_calls_total", "action", "power cycle", "result", "error"))
	require.Equal(t, 0.0, f.Value("tink_bmc_calls_total", "action", "power cycle", "result", "ok"))
}

// TestMetricsSeedFromStore: after a restart the revision in effect, and
// when the store last synced it, show before the first sync.
func TestMetricsSeedFromStore(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	at := time.Unix(1_700_000_000, 0)
	_, err = st.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{
		LastAttemptedRevision: "main@sha1:a", LastAppliedRevision: "main@sha1:a", LastSyncAt: at}})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	_, err = Open(ctx, reg, st, nil)
	require.NoError(t, err)
	f := metricstest.Gather(t, reg)
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	require.Equal(t, 1_700_000_000.0, f.Value("tink_last_applied_timestamp_seconds"))
	require.NotNil(t, f["tink_event_log_events"])
}
