package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestStatus(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	s.PutGit(t, "hardware/node-03.yaml", apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"))
	require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/workflows", "", apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02")+"  disabled: true\n").Status)
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) { r.State = state.RunRunning })
	_, err := s.Store.Apply(context.Background(), &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{
		LastAttemptedRevision: "main@sha1:bad", LastAppliedRevision: apitest.Revision,
		Errors: []state.SyncError{{File: "hardware/x.yaml", Line: 3, Column: 5, Path: "spec", Message: "broken"}},
	}})
	require.NoError(t, err)

	var st client.Status
	do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
	require.Equal(t, "main@sha1:bad", st.Sync.LastAttemptedRevision)
	require.Equal(t, apitest.Revision, st.Sync.LastAppliedRevision)
	require.Equal(t, []state.SyncError{{File: "hardware/x.yaml", Line: 3, Column: 5, Path: "spec", Message: "broken"}}, st.Sync.Errors)
	require.False(t, st.Sync.Suspended)
	require.True(t, st.Ready)
	require.Equal(t, map[string]map[string]int{
		"Hardware": {"api": 2, "git": 1},
		"Template": {"api": 1, "git": 0},
		"Workflow": {"api": 2, "git": 0},
		"Machine":  {"api": 0, "git": 0},
	}, st.Objects)
	require.Equal(t, map[string]int{"RUNNING": 1, "NONE": 1}, st.Workflows)
	require.Empty(t, st.Drift)
	require.Equal(t, uint64(1), st.Events.Oldest)
	require.Positive(t, st.Events.Latest)
}

func TestSyncSuspendResume(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	admin, operator := s.Tokens["admin"], s.Tokens["operator"]

	r := do(t, s, http.MethodPost, "/v1/sync", operator, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var st client.Status
	r.decode(t, &st)
	require.Equal(t, apitest.Revision, st.Sync.LastAppliedRevision)
	require.Equal(t, 1, s.Syncer.Syncs())

	r = do(t, s, http.MethodPost, "/v1/suspend", admin, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r.decode(t, &st)
	require.True(t, st.Sync.Suspended)

	e := do(t, s, http.MethodPost, "/v1/sync", operator, "").apiError(t, http.StatusConflict, state.ECONFLICT)
	require.Equal(t, "reconciliation is suspended; resume it first", e.Message)

	r = do(t, s, http.MethodPost, "/v1/resume", admin, "")
	r.decode(t, &st)
	require.False(t, st.Sync.Suspended)

	var msgs []string
	for _, ev := range events(t, s) {
		if ev.Actor.IsAPI() {
			msgs = append(msgs, string(ev.Actor)+" "+ev.Message)
		}
	}
	require.Equal(t, []string{
		"api:operator sync requested through the API by operator",
		"api:admin reconciliation suspended",
		"api:operator sync requested through the API by operator",
		"api:admin reconciliation resumed",
	}, msgs)
}

func TestWithoutSyncer(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithoutSyncer())
	for _, p := range []string{"/v1/sync", "/v1/suspend", "/v1/resume"} {
		do(t, s, http.MethodPost, p, "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
	}
	r := do(t, s, http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusOK, r.Status, "without a syncer there is no first sync to wait for")
}

func TestHealthAndReadiness(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	r := do(t, s, http.MethodGet, "/healthz", "", "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "ok\n", string(r.Body))

	s.Syncer.SetReady(false)
	e := do(t, s, http.MethodGet, "/readyz", "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, "not ready: the first sync has not finished yet", e.Message)
	s.Syncer.SetReady(true)
	r = do(t, s, http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusOK, r.Status)

	// A probe answered 503 is not an error of the server: probes ask
	// every few seconds while a first sync runs.
	for _, line := range strings.Split(strings.TrimSpace(s.Log.String()), "\n") {
		if strings.Contains(line, `"route":"/readyz"`) {
			require.Contains(t, line, `"level":"DEBUG"`, line)
		}
	}
}

// TestUnavailableIsAWarning: a 503 the server answers on purpose (here:
// no syncer) is logged as a warning, not as an error.
func TestUnavailableIsAWarning(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithoutSyncer())
	do(t, s, http.MethodPost, "/v1/sync", "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
	var seen bool
	for _, line := range strings.Split(strings.TrimSpace(s.Log.String()), "\n") {
		if strings.Contains(line, `"route":"/v1/sync"`) {
			seen = true
			require.Contains(t, line, `"level":"WARN"`, line)
		}
	}
	require.True(t, seen, "the request was logged")
}

func TestMetrics(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	do(t, s, http.MethodGet, "/v1/workflows/wf-01", "", "")
	do(t, s, http.MethodGet, "/v1/workflows/nope", "", "")
	do(t, s, http.MethodGet, "/v1/nothing", "", "")
	r := do(t, s, http.MethodGet, "/metrics", "", "")
	require.Equal(t, http.StatusOK, r.Status)
	text := string(r.Body)
	for _, want := range []string{
		`tink_http_requests_total{code="201",route="/v1/hardware"} 2`,
		`tink_http_requests_total{code="200",route="/v1/workflows/:name"} 1`,
		`tink_http_requests_total{code="404",route="/v1/workflows/:name"} 1`,
		`tink_http_requests_total{code="404",route="unmatched"} 1`,
		`tink_http_request_duration_seconds_count{route="/v1/workflows/:name"} 2`,
		`go_goroutines`,
	} {
		require.Contains(t, text, want)
	}
	require.False(t, strings.Contains(text, "nope"), "paths never become label values")
}
