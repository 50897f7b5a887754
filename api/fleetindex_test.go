package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// freshView answers a GET as a server that has just started on the same
// store would: its index is built from a full listing.
func freshView(t *testing.T, s *apitest.Server, path string, v any) {
	t.Helper()
	srv, err := api.New(api.Config{Store: s.Store})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), v))
}

// put updates an object through the API with the resourceVersion it has.
func put(t *testing.T, s *apitest.Server, path, query, body string) {
	t.Helper()
	cur := do(t, s, http.MethodGet, path, "", "").object(t)
	body = strings.Replace(body, "metadata:", "metadata:\n  resourceVersion: \""+cur.Metadata.ResourceVersion+"\"", 1)
	r := do(t, s, http.MethodPut, path+query, "", body)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
}

// statusCounts is what the index decides in a status.
func statusCounts(st client.Status) (map[string]map[string]int, map[string]int, []client.Drift) {
	return st.Objects, st.Workflows, st.Drift
}

// hardwareRuns is what the index decides in a hardware list.
func hardwareRuns(l client.List) map[string]string {
	out := map[string]string{}
	for _, o := range l.Items {
		if o.Status != nil && o.Status.Workflow != nil {
			w := o.Status.Workflow
			out[o.Metadata.Name] = w.Name + "#" + strconv.Itoa(w.Run) + " " + w.State
		}
	}
	return out
}

// TestStatusIndexFollowsTheLog: a server whose index was built before a
// series of changes (objects created, overridden and deleted through the
// API and by Git, runs created and moving, a workflow moved to another
// machine) answers /v1/status and the hardware list exactly as a server
// started after them, which lists everything.
func TestStatusIndexFollowsTheLog(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	var st client.Status
	do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
	require.Equal(t, map[string]int{"NONE": 0, "PENDING": 1}, map[string]int{"NONE": st.Workflows["NONE"], "PENDING": st.Workflows["PENDING"]})

	// Changes after the index was built.
	s.PutGit(t, "hardware/node-03.yaml", apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"))
	s.PutGit(t, "hardware/node-04.yaml", apitest.HardwareYAML("node-04", "52:54:00:10:00:04", "10.10.1.14"))
	put(t, s, "/v1/hardware/node-03", "?force=true&reason=NIC+swapped",
		strings.Replace(apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"), "52:54:00:10:00:03", "52:54:00:10:00:33", 1))
	require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/workflows", "", apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02")).Status)
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) { r.State = state.RunRunning })
	s.UpdateRun(t, "wf-02", state.ActorReconciler, func(r *state.WorkflowRun) { r.State = state.RunFailed })
	require.Equal(t, http.StatusOK, do(t, s, http.MethodDelete, "/v1/hardware/node-04?force=true", "", "").Status)

	st = client.Status{}
	do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
	var fresh client.Status
	freshView(t, s, "/v1/status", &fresh)
	require.Equal(t, fresh.Workflows, st.Workflows)
	require.Equal(t, map[string]int{"RUNNING": 1, "FAILED": 1}, st.Workflows)
	require.Len(t, st.Drift, 1)
	require.Equal(t, "node-03", st.Drift[0].Name)
	o1, w1, d1 := statusCounts(st)
	o2, w2, d2 := statusCounts(fresh)
	require.Equal(t, o2, o1)
	require.Equal(t, w2, w1)
	require.Equal(t, d2, d1)

	// A second run of wf-01 (its spec changed once the first ended), and
	// wf-02 moved to node-01.
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) { r.State = state.RunSuccess })
	put(t, s, "/v1/workflows/wf-01", "", apitest.WorkflowYAML("wf-01", "basic", "node-01", "52:54:00:10:00:01")+"  run: 2\n")
	put(t, s, "/v1/workflows/wf-02", "", apitest.WorkflowYAML("wf-02", "basic", "node-01", "52:54:00:10:00:01"))
	require.Equal(t, 2, s.Run(t, "wf-01").Number)

	st, fresh = client.Status{}, client.Status{}
	do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
	freshView(t, s, "/v1/status", &fresh)
	o1, w1, d1 = statusCounts(st)
	o2, w2, d2 = statusCounts(fresh)
	require.Equal(t, o2, o1)
	require.Equal(t, w2, w1)
	require.Equal(t, d2, d1)
	require.Equal(t, 2, w1["PENDING"], "the second runs of wf-01 (run bumped) and wf-02 (moved)")

	var list, freshList client.List
	do(t, s, http.MethodGet, "/v1/hardware", "", "").decode(t, &list)
	freshView(t, s, "/v1/hardware", &freshList)
	got, want := hardwareRuns(list), hardwareRuns(freshList)
	require.Equal(t, want, got)
	require.Contains(t, got, "node-01")
	require.NotContains(t, got, "node-02", "wf-02 moved away from node-02")
	require.Len(t, got, 1)

	// The workflows of a machine.
	names := func(path string) []string {
		var l client.List
		do(t, s, http.MethodGet, path, "", "").decode(t, &l)
		out := []string{}
		for _, o := range l.Items {
			out = append(out, o.Metadata.Name)
		}
		return out
	}
	require.Equal(t, []string{"wf-01", "wf-02"}, names("/v1/workflows?hardware=node-01"))
	require.Equal(t, []string{}, names("/v1/workflows?hardware=node-02"), "wf-02 moved away")
	require.Equal(t, []string{}, names("/v1/workflows?hardware=node-01&labelSelector=team%3Dnone"))
}
