package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/metrics/metricstest"
	"github.com/tinkops/tinkops/state"
)

// scrape reads GET /metrics as Prometheus does.
func scrape(t *testing.T, m *Main) metricstest.Families {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return metricstest.Parse(t, resp.Body)
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
	var f metricstest.Families
	// The inventory follows the event log in its own goroutine: wait for
	// it to see the run end.
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.Value("tink_workflow_runs", "state", "SUCCESS") == 1
	}, 10*time.Second, 50*time.Millisecond)

	// Reconcile: the first sync applied the repository, in some time.
	require.GreaterOrEqual(t, f.Value("tink_reconcile_total", "result", "applied"), 1.0)
	require.GreaterOrEqual(t, f.Value("tink_reconcile_duration_seconds", "result", "applied"), 1.0)
	require.Equal(t, 0.0, f.Value("tink_reconcile_total", "result", "failed"))
	require.Len(t, f.Series("tink_last_applied_revision_info"), 1, "only the revision in effect")
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", st.LastAppliedRevision))
	applied := f.Value("tink_last_applied_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), applied, time.Since(start).Seconds()+1)

	// Git: the directory was read at least once, without failure.
	require.GreaterOrEqual(t, f.Value("tink_git_fetch_duration_seconds"), 1.0)
	require.Equal(t, 0.0, f.Value("tink_git_fetch_failures_total"))

	// Inventory: one of each kind, all from Git; one run, SUCCESS.
	for _, kind := range []string{state.KindHardware, state.KindTemplate, state.KindWorkflow} {
		require.Equal(t, 1.0, f.Value("tink_objects", "kind", kind, "source", "git"), kind)
		require.Equal(t, 0.0, f.Value("tink_objects", "kind", kind, "source", "api"), kind)
	}
	for _, s := range []string{"PENDING", "PREPARING", "RUNNING", "FAILED", "TIMEOUT", "CANCELLED"} {
		require.Equal(t, 0.0, f.Value("tink_workflow_runs", "state", s), s)
	}

	// Actions: each of the template's four ended once, SUCCESS.
	for _, a := range []string{"step-1", "step-2", "step-3", "step-4"} {
		require.Equal(t, 1.0, f.Value("tink_action_duration_seconds", "template", "e2e", "action", a, "result", "SUCCESS"), a)
	}
	require.Len(t, f.Series("tink_action_duration_seconds"), 4)

	// BMC: netboot is power off, PXE once, power on; each once and ok.
	for _, a := range []string{"power off", "bootdev pxe", "power on"} {
		require.Equal(t, 1.0, f.Value("tink_bmc_calls_total", "action", a, "result", "ok"), a)
		require.Equal(t, 0.0, f.Value("tink_bmc_calls_total", "action", a, "result", "error"), a)
		require.Equal(t, 1.0, f.Value("tink_bmc_call_duration_seconds", "action", a), a)
	}
	require.Equal(t, 0.0, f.Value("tink_bmc_calls_total", "action", "virtual media insert", "result", "ok"))

	// Workers: node-01's worker was seen during the run (it polls by MAC;
	// the label is the hardware's name).
	require.Len(t, f.Series("tink_worker_last_seen_seconds"), 1)
	require.InDelta(t, float64(time.Now().Unix()), f.Value("tink_worker_last_seen_seconds", "worker", "node-01"), 60)

	// Store and API.
	bounds, err := m.Store.EventBounds(ctx)
	require.NoError(t, err)
	require.Greater(t, f.Value("tink_event_log_events"), 0.0)
	require.GreaterOrEqual(t, f.Value("tink_event_log_last_seq"), f.Value("tink_event_log_events"))
	require.LessOrEqual(t, f.Value("tink_event_log_last_seq"), float64(bounds.Latest+1000))
	require.GreaterOrEqual(t, f.Value("tink_http_requests_total", "route", "/readyz", "code", "200"), 1.0)
	require.GreaterOrEqual(t, f.Value("tink_http_requests_total", "route", "/v1/workers/:id/actions/report", "code", "200"), 4.0)
	require.NotNil(t, f["go_goroutines"], "the Go runtime collector is registered")

	// A broken file: invalid, and the applied revision stays.
	require.NoError(t, os.WriteFile(filepath.Join(repo, "templates", "broken.yaml"), []byte("version: [\n"), 0o644))
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.Value("tink_reconcile_total", "result", "invalid") >= 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", st.LastAppliedRevision))
	require.Equal(t, applied, f.Value("tink_last_applied_timestamp_seconds"))
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
	require.GreaterOrEqual(t, f.Value("tink_git_fetch_duration_seconds"), 1.0)
	require.Equal(t, 0.0, f.Value("tink_git_fetch_failures_total"))
	require.Equal(t, 1.0, f.Value("tink_reconcile_total", "result", "applied"))
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:"+first))

	require.NoError(t, os.RemoveAll(repo.Bare))
	require.Eventually(t, func() bool {
		f = scrape(t, m)
		return f.Value("tink_git_fetch_failures_total") >= 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, f.Value("tink_last_applied_revision_info", "revision", "main@sha1:"+first))
}
