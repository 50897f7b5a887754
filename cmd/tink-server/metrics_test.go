package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// families are scraped metrics by name.
type families map[string]*dto.MetricFamily

// scrape reads GET /metrics as Prometheus does.
func scrape(t *testing.T, m *Main) families {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// gather reads a registry without HTTP.
func gather(t *testing.T, reg *prometheus.Registry) families {
	t.Helper()
	list, err := reg.Gather()
	require.NoError(t, err)
	out := families{}
	for _, f := range list {
		out[f.GetName()] = f
	}
	return out
}

// series returns the samples of a family whose labels include labels
// (given as name, value pairs).
func (f families) series(name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	fam := f[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// value is the value of the one sample with labels: a gauge's or
// counter's value, a histogram's count; -1 if there is no such sample.
func (f families) value(name string, labels ...string) float64 {
	ms := f.series(name, labels...)
	if len(ms) != 1 {
		return -1
	}
	m := ms[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

// TestMetricsEndToEnd: a server on a directory repository syncs, prepares a
// netboot workflow on a real IPMI BMC (ipmi_sim), and a real worker runs
// its four actions to SUCCESS; /metrics then shows every tink_ series with
// the values that story implies. A broken commit counts as invalid and
// leaves the applied revision alone.
func TestMetricsEndToEnd(t *testing.T) {
	ctx := context.Background()
	fx := newIPMIFixture(t, strings.TrimSuffix(e2eWorkflow, "}\n")+", bootOptions: {bootMode: netboot}}\n")
	secrets, repo := fx.secrets, fx.repo
	start := time.Now()
	m := MustRunMain(t, repo, "--secrets-dir", secrets, "--bmc-timeout", "5s", "--bmc-retries", "1")
	waitReady(t, m)
	startWorker(t, buildWorker(t), m.Addr(), "52:54:00:00:00:01")
	run := waitRun(t, m.Store, "e2e", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, run.State, run.Reason)

	st, err := m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	var f families
	// The inventory follows the event log in its own goroutine: wait for
	// it to see the run end.
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.value("tink_workflow_runs", "state", "SUCCESS") == 1
	}, 10*time.Second, 50*time.Millisecond)

	// Reconcile: the first sync applied the repository, in some time.
	require.GreaterOrEqual(t, f.value("tink_reconcile_total", "result", "applied"), 1.0)
	require.GreaterOrEqual(t, f.value("tink_reconcile_duration_seconds", "result", "applied"), 1.0)
	require.Equal(t, 0.0, f.value("tink_reconcile_total", "result", "failed"))
	require.Len(t, f.series("tink_last_applied_revision_info"), 1, "only the revision in effect")
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", st.LastAppliedRevision))
	applied := f.value("tink_last_applied_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), applied, time.Since(start).Seconds()+1)

	// Git: the directory was read at least once, without failure.
	require.GreaterOrEqual(t, f.value("tink_git_fetch_duration_seconds"), 1.0)
	require.Equal(t, 0.0, f.value("tink_git_fetch_failures_total"))

	// Inventory: one of each kind, all from Git; one run, SUCCESS.
	for _, kind := range []string{state.KindHardware, state.KindTemplate, state.KindWorkflow} {
		require.Equal(t, 1.0, f.value("tink_objects", "kind", kind, "source", "git"), kind)
		require.Equal(t, 0.0, f.value("tink_objects", "kind", kind, "source", "api"), kind)
	}
	for _, s := range []string{"PENDING", "PREPARING", "RUNNING", "FAILED", "TIMEOUT", "CANCELLED"} {
		require.Equal(t, 0.0, f.value("tink_workflow_runs", "state", s), s)
	}

	// Actions: each of the template's four ended once, SUCCESS.
	for _, a := range []string{"step-1", "step-2", "step-3", "step-4"} {
		require.Equal(t, 1.0, f.value("tink_action_duration_seconds", "template", "e2e", "action", a, "result", "SUCCESS"), a)
	}
	require.Len(t, f.series("tink_action_duration_seconds"), 4)

	// BMC: netboot is power off, PXE once, power on; each once and ok.
	for _, a := range []string{"power off", "bootdev pxe", "power on"} {
		require.Equal(t, 1.0, f.value("tink_bmc_calls_total", "action", a, "result", "ok"), a)
		require.Equal(t, 0.0, f.value("tink_bmc_calls_total", "action", a, "result", "error"), a)
		require.Equal(t, 1.0, f.value("tink_bmc_call_duration_seconds", "action", a), a)
	}
	require.Equal(t, 0.0, f.value("tink_bmc_calls_total", "action", "virtual media insert", "result", "ok"))

	// Workers: node-01's worker was seen during the run (it polls by MAC;
	// the label is the hardware's name).
	require.Len(t, f.series("tink_worker_last_seen_seconds"), 1)
	require.InDelta(t, float64(time.Now().Unix()), f.value("tink_worker_last_seen_seconds", "worker", "node-01"), 60)

	// Store and API.
	bounds, err := m.Store.EventBounds(ctx)
	require.NoError(t, err)
	require.Greater(t, f.value("tink_event_log_events"), 0.0)
	require.GreaterOrEqual(t, f.value("tink_event_log_last_seq"), f.value("tink_event_log_events"))
	require.LessOrEqual(t, f.value("tink_event_log_last_seq"), float64(bounds.Latest+1000))
	require.GreaterOrEqual(t, f.value("tink_http_requests_total", "route", "/readyz", "code", "200"), 1.0)
	require.GreaterOrEqual(t, f.value("tink_http_requests_total", "route", "/v1/workers/:id/actions/report", "code", "200"), 4.0)
	require.NotNil(t, f["go_goroutines"], "the Go runtime collector is registered")

	// A broken file: invalid, and the applied revision stays.
	require.NoError(t, os.WriteFile(filepath.Join(repo, "templates", "broken.yaml"), []byte("version: [\n"), 0o644))
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.value("tink_reconcile_total", "result", "invalid") >= 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", st.LastAppliedRevision))
	require.Equal(t, applied, f.value("tink_last_applied_timestamp_seconds"))
}

// metricsFixture opens the store in dir with the server's metrics on a
// registry of their own, the inventory following the store until the test
// ends.
func metricsFixture(t *testing.T, dir string) (*badger.Store, *serverMetrics, *prometheus.Registry) {
	t.Helper()
	st, err := badger.Open(context.Background(), dir, badger.Options{NoSync: true})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	sm, err := newServerMetrics(reg, st, nil)
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
			f := gather(t, reg)
			for k, v := range kindSource {
				kind, src, _ := strings.Cut(k, "/")
				assert.Equal(c, v, f.value("tink_objects", "kind", kind, "source", src), k)
			}
			for s, v := range runs {
				assert.Equal(c, v, f.value("tink_workflow_runs", "state", s), s)
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
	require.Eventually(t, func() bool { return gather(t, reg).value("tink_objects", "kind", "Hardware", "source", "git") == 2 }, 5*time.Second, 10*time.Millisecond)
	at := time.Unix(1_700_000_000, 500_000_000)
	sm.WorkerSeen("", "node-01", at)
	sm.WorkerSeen("", "node-02", at.Add(-time.Minute))
	f := gather(t, reg)
	require.Equal(t, 1_700_000_000.5, f.value("tink_worker_last_seen_seconds", "worker", "node-01"))
	require.Equal(t, 1_699_999_940.5, f.value("tink_worker_last_seen_seconds", "worker", "node-02"))

	require.NoError(t, st.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindHardware, Name: "node-02"}, 0))
	require.Eventually(t, func() bool { return len(gather(t, reg).series("tink_worker_last_seen_seconds")) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, gather(t, reg).series("tink_worker_last_seen_seconds", "worker", "node-02"))
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
	f := gather(t, reg)
	for _, r := range []string{"applied", "unchanged", "invalid", "blocked", "failed"} {
		require.Equal(t, 0.0, f.value("tink_reconcile_total", "result", r), "%s starts at 0", r)
	}
	require.Empty(t, f.series("tink_last_applied_revision_info"), "nothing applied yet")
	require.Nil(t, f["tink_last_applied_timestamp_seconds"])

	sm.reconciled(reconciler.SyncApplied, "main@sha1:a", 2*time.Second)
	f = gather(t, reg)
	require.Equal(t, 1.0, f.value("tink_reconcile_total", "result", "applied"))
	require.Equal(t, 2.0, f.series("tink_reconcile_duration_seconds", "result", "applied")[0].Histogram.GetSampleSum())
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	first := f.value("tink_last_applied_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), first, 2)

	time.Sleep(20 * time.Millisecond)
	sm.reconciled(reconciler.SyncInvalid, "main@sha1:b", time.Second)
	sm.reconciled(reconciler.SyncBlocked, "main@sha1:c", time.Second)
	sm.reconciled(reconciler.SyncFailed, "", time.Second)
	sm.reconciled(reconciler.SyncUnchanged, "main@sha1:a", time.Second)
	f = gather(t, reg)
	require.Len(t, f.series("tink_last_applied_revision_info"), 1)
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	require.Equal(t, first, f.value("tink_last_applied_timestamp_seconds"))
	for _, r := range []string{"invalid", "blocked", "failed", "unchanged"} {
		require.Equal(t, 1.0, f.value("tink_reconcile_total", "result", r), r)
	}

	sm.reconciled(reconciler.SyncApplied, "main@sha1:d", time.Second)
	f = gather(t, reg)
	require.Len(t, f.series("tink_last_applied_revision_info"), 1, "the old revision is gone")
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:d"))
	require.Greater(t, f.value("tink_last_applied_timestamp_seconds"), first)

	sm.gitSynced(time.Second, nil)
	sm.gitSynced(time.Second, fmt.Errorf("no route to host"))
	sm.bmcCalled("power cycle", time.Second, false)
	f = gather(t, reg)
	require.Equal(t, 2.0, f.value("tink_git_fetch_duration_seconds"))
	require.Equal(t, 1.0, f.value("tink_git_fetch_failures_total"))
	require.Equal(t, 1.0, f.value("tink_bmc_calls_total", "action", "power cycle", "result", "error"))
	require.Equal(t, 0.0, f.value("tink_bmc_calls_total", "action", "power cycle", "result", "ok"))
}

// TestMetricsSeedFromStore: after a restart the revision in effect, and
// when the store last synced it, show before the first sync.
func TestMetricsSeedFromStore(t *testing.T) {
	ctx := context.Background()
	m := NewMain(nil, nil)
	var err error
	m.Store, err = badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Store.Close()) })
	at := time.Unix(1_700_000_000, 0)
	_, err = m.Store.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{
		LastAttemptedRevision: "main@sha1:a", LastAppliedRevision: "main@sha1:a", LastSyncAt: at}})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	_, err = m.openMetrics(ctx, reg)
	require.NoError(t, err)
	f := gather(t, reg)
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:a"))
	require.Equal(t, 1_700_000_000.0, f.value("tink_last_applied_timestamp_seconds"))
	require.NotNil(t, f["tink_event_log_events"])
}

// TestMetricsGitFetch: on a Git repository every check and fetch is timed,
// and one that fails (the repository is gone) is counted; the revision
// applied before stays in effect.
func TestMetricsGitFetch(t *testing.T) {
	repo := gittest.NewRepo(t)
	first := repo.Commit("fleet", map[string]string{"hardware/node-01.yaml": e2eHardware})
	m := MustRunMain(t, repo.FileURL(), "--poll-interval", "100ms")
	waitReady(t, m)
	f := scrape(t, m)
	require.GreaterOrEqual(t, f.value("tink_git_fetch_duration_seconds"), 1.0)
	require.Equal(t, 0.0, f.value("tink_git_fetch_failures_total"))
	require.Equal(t, 1.0, f.value("tink_reconcile_total", "result", "applied"))
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:"+first))

	require.NoError(t, os.RemoveAll(repo.Bare))
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.value("tink_git_fetch_failures_total") >= 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, f.value("tink_last_applied_revision_info", "revision", "main@sha1:"+first))
}
