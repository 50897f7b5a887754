package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// powerBMC reports a power state that the test changes.
type powerBMC struct {
	recordingBMC
	mu    sync.Mutex
	state string
}

func (b *powerBMC) PowerStatus(hw state.ObjectKey) (*client.PowerStatus, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if hw.Name != "node-01" || b.state == "" {
		return nil, false
	}
	return &client.PowerStatus{State: b.state, CheckedAt: time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)}, true
}

func (b *powerBMC) set(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = s
}

// TestListsServeCurrent: every list (whole, paged, by label, of each
// kind) is byte for byte what the server answered before it kept encoded
// items and shared the store's decodings (ListUncached), asked twice
// after every kind of change: writes through the API (create, update,
// override, delete), a sync from Git, run transitions by the engine, a run
// change that logs no event (a waiting run's reason), and a machine's
// power state. Each step changes what an earlier list had cached, so a
// stale item fails the comparison.
func TestListsServeCurrent(t *testing.T) {
	bmc := &powerBMC{}
	s := apitest.MustRunServer(t, apitest.WithBMC(bmc))
	ctx := context.Background()
	seedFleet(t, s, "")
	for _, b := range []struct{ path, body string }{
		{"/v1/hardware", apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13")},
		{"/v1/workflows", apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02")},
		{"/v1/workflows", apitest.WorkflowYAML("wf-03", "basic", "node-03", "52:54:00:10:00:03")},
	} {
		r := do(t, s, http.MethodPost, b.path, "", b.body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	}
	s.PutGit(t, "hardware/node-04.yaml", apitest.HardwareYAML("node-04", "52:54:00:10:00:04", "10.10.1.14"))

	type listCase struct {
		res   client.Resource
		query state.ObjectQuery
	}
	rack, err := state.ParseSelector("rack=r1")
	require.NoError(t, err)
	cases := []listCase{
		{client.Hardware, state.ObjectQuery{}},
		{client.Hardware, state.ObjectQuery{Limit: 2}},
		{client.Hardware, state.ObjectQuery{Selector: rack}},
		{client.Templates, state.ObjectQuery{}},
		{client.Workflows, state.ObjectQuery{}},
		{client.Workflows, state.ObjectQuery{Limit: 2}},
	}
	check := func(step string) {
		t.Helper()
		for _, tc := range cases {
			// The uncached page, then its next page too when there is one.
			for q, pages := tc.query, 0; pages < 3; pages++ {
				want, err := s.API.ListUncached(ctx, tc.res, q)
				require.NoError(t, err)
				v := url.Values{}
				if q.Limit > 0 {
					v.Set("limit", fmt.Sprint(q.Limit))
				}
				if len(q.Selector) > 0 {
					v.Set("labelSelector", q.Selector.String())
				}
				if q.Continue != "" {
					v.Set("continue", q.Continue)
				}
				for range 2 { // the second from what the first kept
					r := do(t, s, http.MethodGet, "/v1/"+string(tc.res)+"?"+v.Encode(), "", "")
					require.Equal(t, http.StatusOK, r.Status, string(r.Body))
					require.Equal(t, string(want), string(r.Body), "%s: %s %v", step, tc.res, v)
				}
				var page client.List
				response{Body: want}.decode(t, &page)
				if q.Continue = page.Metadata.Continue; q.Continue == "" {
					break
				}
			}
		}
	}
	check("seeded")

	// Writes through the API: a workflow's spec changes (a new run), a
	// Git-managed machine is overridden, a machine is deleted.
	wf := do(t, s, http.MethodGet, "/v1/workflows/wf-03", "", "").object(t)
	r := do(t, s, http.MethodPut, "/v1/workflows/wf-03", "", fmt.Sprintf(`{"apiVersion":"tinkerbell.org/v1alpha1","kind":"Workflow","metadata":{"name":"wf-03","resourceVersion":%q},"spec":{"templateRef":"basic","hardwareRef":"node-03","hardwareMap":{"device_1":"52:54:00:10:00:03","device_2":"52:54:00:10:00:02"}}}`, wf.Metadata.ResourceVersion))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	check("workflow updated through the API")
	hw := do(t, s, http.MethodGet, "/v1/hardware/node-04", "", "").object(t)
	body := strings.Replace(apitest.HardwareYAML("node-04", "52:54:00:10:00:04", "10.10.1.24"), "  name: node-04\n", "  name: node-04\n  resourceVersion: \""+hw.Metadata.ResourceVersion+"\"\n", 1)
	r = do(t, s, http.MethodPut, "/v1/hardware/node-04?force=true&reason=test", "", body)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	check("hardware overridden through the API")

	// A sync from Git changes a machine's labels and spec (which ends its
	// override).
	objs, _, errs := schema.NewLoader().DecodeFile("hardware/node-04.yaml", []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: node-04
  labels: {rack: r2}
spec:
  interfaces:
    - dhcp: {mac: "52:54:00:10:00:04", ip: {address: 10.10.1.34}}
`))
	require.Empty(t, errs)
	synced, err := reconciler.ToState(objs[0], state.SourceGit, apitest.Revision)
	require.NoError(t, err)
	cur, err := s.Store.GetObject(ctx, synced.Key())
	require.NoError(t, err)
	synced.ResourceVersion = cur.ResourceVersion
	_, err = s.Store.Apply(ctx, &state.Batch{Actor: state.ActorGit, Revision: apitest.Revision, Objects: []state.ObjectOp{{Object: synced}}})
	require.NoError(t, err)
	check("synced from Git")

	// The engine starts a run and an action ends: run-state and
	// action-state events.
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State, r.Reason, r.StartedAt = state.RunRunning, "started", time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
		r.Actions = apitest.Actions("52:54:00:10:00:01", "wipe-disk", "install-os")
		r.Actions[0].State, r.Actions[0].Attempt = state.RunRunning, 1
	})
	check("run started")
	s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
		r.Actions[0].State, r.CurrentAction, r.Reason = state.RunSuccess, 1, "action wipe-disk succeeded"
	})
	check("action succeeded")
	// A waiting run's reason changes: the store logs no event for it.
	evs := len(events(t, s))
	s.UpdateRun(t, "wf-02", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.Reason = "waits for node-01"
	})
	require.Len(t, events(t, s), evs, "a reason alone logs no event")
	check("reason changed without an event")
	// wf-03's second run takes node-02 as well while it runs; then ends.
	s.UpdateRun(t, "wf-03", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State, r.Machines = state.RunRunning, []string{"node-02"}
	})
	check("run holds a second machine")
	s.UpdateRun(t, "wf-03", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State, r.Reason, r.FinishedAt = state.RunSuccess, "every action succeeded", time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	})
	check("run ended")

	// A machine's power state, which the BMC reports, not the store.
	bmc.set("on")
	check("power read")
	bmc.set("off")
	check("power changed")

	// Deletions through the API.
	r = do(t, s, http.MethodDelete, "/v1/workflows/wf-03", "", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	check("workflow deleted")
	r = do(t, s, http.MethodDelete, "/v1/hardware/node-03", "", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	check("hardware deleted")
}
