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

func TestWorkflowCreateStartsRun(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")

	run, err := s.Store.GetRun(context.Background(), state.RunKey{Workflow: "wf-01", Number: 1})
	require.NoError(t, err)
	require.Equal(t, state.RunPending, run.State)
	require.Equal(t, "basic", run.Template)
	require.Equal(t, "node-01", run.Hardware)
	require.Equal(t, "created through the API by anonymous", run.Reason)

	wf, err := s.Store.GetObject(context.Background(), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-01"})
	require.NoError(t, err)
	require.JSONEq(t, `{"lastRun": 1}`, string(wf.Status))

	o := do(t, s, http.MethodGet, "/v1/workflows/wf-01", "", "").object(t)
	require.Equal(t, 1, o.Status.Run.Number)
	require.Equal(t, "PENDING", o.Status.Run.State)
	require.JSONEq(t, `{"lastRun": 1}`, string(o.Status.Runtime))

	// The object and its run were one batch: created, then run-state.
	evs := events(t, s)
	last := evs[len(evs)-2:]
	require.Equal(t, state.EventCreated, last[0].Type)
	require.Equal(t, state.EventRunState, last[1].Type)
	require.Equal(t, "Workflow/wf-01#1: PENDING: created through the API by anonymous", last[1].Message)

	var hw client.List
	do(t, s, http.MethodGet, "/v1/hardware", "", "").decode(t, &hw)
	require.Equal(t, &client.HardwareWorkflow{Name: "wf-01", Run: 1, State: "PENDING"}, hw.Items[0].Status.Workflow)
	require.Nil(t, hw.Items[1].Status.Workflow)
}

func TestWorkflowChecks(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	for _, tc := range []struct {
		name, body, message string
		details             []client.Detail
	}{
		{name: "ErrMissingRefs", body: apitest.WorkflowYAML("wf-x", "nope", "node-09", "52:54:00:10:00:01"),
			message: "workflow wf-x cannot run: 2 problems",
			details: []client.Detail{
				{Path: "spec.templateRef", Line: 6, Column: 16, Object: "Workflow/wf-x", Message: `template "nope" is not declared`},
				{Path: "spec.hardwareRef", Line: 7, Column: 16, Object: "Workflow/wf-x", Message: `hardware "node-09" is not declared`},
			}},
		{name: "ErrForeignMAC", body: apitest.WorkflowYAML("wf-x", "basic", "node-01", "52:54:00:10:00:02"),
			message: "workflow wf-x cannot run: 1 problem",
			details: []client.Detail{{Path: "spec.hardwareMap.device_1", Line: 9, Column: 15, Object: "Workflow/wf-x", Message: "52:54:00:10:00:02 is a MAC address of hardware node-02, not of node-01 (it has 52:54:00:10:00:01); other keys may name other machines, whose tasks then run there, but one must name a MAC of the workflow's own hardware"}}},
		{name: "ErrUnknownMAC", body: apitest.WorkflowYAML("wf-x", "basic", "node-01", "52:54:00:10:00:77"),
			message: "workflow wf-x cannot run: 2 problems"},
		{name: "ErrDoesNotRender", body: strings.Replace(apitest.WorkflowYAML("wf-x", "basic", "node-01", "52:54:00:10:00:01"), "device_1", "device_9", 1),
			message: "workflow wf-x cannot run: 1 problem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := do(t, s, http.MethodPost, "/v1/workflows", "", tc.body).apiError(t, http.StatusBadRequest, state.EINVALID)
			require.Equal(t, tc.message, e.Message)
			if tc.details != nil {
				require.Equal(t, tc.details, e.Details)
			} else {
				last := e.Details[len(e.Details)-1]
				require.Equal(t, "spec.templateRef", last.Path)
				require.Contains(t, last.Message, "template basic does not render for hardware node-01")
			}
		})
	}
	do(t, s, http.MethodGet, "/v1/workflows/wf-x", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
}

func TestWorkflowUpdateRunsAgain(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	put := func(body string) client.Object {
		t.Helper()
		cur := do(t, s, http.MethodGet, "/v1/workflows/wf-01", "", "").object(t)
		body = strings.Replace(body, "metadata:", "metadata:\n  resourceVersion: \""+cur.Metadata.ResourceVersion+"\"", 1)
		r := do(t, s, http.MethodPut, "/v1/workflows/wf-01", "", body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		return r.object(t)
	}
	base := apitest.WorkflowYAML("wf-01", "basic", "node-01", "52:54:00:10:00:01")

	o := put(strings.Replace(base, "metadata:", "metadata:\n  labels: {team: a}", 1))
	require.Equal(t, 1, o.Status.Run.Number, "a label change runs nothing")

	o = put(base + "  run: 2\n")
	require.Equal(t, 2, o.Status.Run.Number)
	require.Equal(t, "spec changed through the API by anonymous; waits for run 1, now PENDING, to end", o.Status.Run.Reason)

	o = put(base + "  run: 2\n  disabled: true\n")
	require.Equal(t, 2, o.Status.Run.Number, "disabling runs nothing")
}

func TestWorkflowRunView(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
		r.State = state.RunRunning
		r.Actions = apitest.Actions("52:54:00:10:00:01", "wipe-disk", "install-os", "reboot")
		r.Actions[0].State = state.RunSuccess
		r.Actions[1].State = state.RunRunning
		r.CurrentAction = 1
	})
	r := do(t, s, http.MethodGet, "/v1/workflows/wf-01", "", "")
	o := r.object(t)
	require.Equal(t, "RUNNING", o.Status.Run.State)
	require.Equal(t, "provision/install-os", o.Status.Run.CurrentAction)
	require.Equal(t, 1, o.Status.Run.ActionsDone)
	require.Equal(t, 3, o.Status.Run.ActionsTotal)
	require.Len(t, o.Status.Run.Actions, 3)
	require.NotContains(t, string(r.Body), "rendered-secret-value", "rendered environments stay on the server")

	var list client.List
	do(t, s, http.MethodGet, "/v1/workflows", "", "").decode(t, &list)
	require.Equal(t, "RUNNING", list.Items[0].Status.Run.State)
	require.Empty(t, list.Items[0].Status.Run.Actions, "lists carry no action details")

	e := do(t, s, http.MethodDelete, "/v1/workflows/wf-01", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
	require.Equal(t, "workflow wf-01 has run 1 RUNNING; cancel it first (tink workflow cancel wf-01)", e.Message)
}

func TestRetryAndCancel(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")

	r := do(t, s, http.MethodPost, "/v1/workflows/wf-01/cancel", "", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var run client.Run
	r.decode(t, &run)
	require.Equal(t, "CANCELLED", run.State)
	require.Equal(t, "cancelled by api:anonymous", run.Reason)

	e := do(t, s, http.MethodPost, "/v1/workflows/wf-01/cancel", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
	require.Contains(t, e.Message, "has already ended (CANCELLED)")

	r = do(t, s, http.MethodPost, "/v1/workflows/wf-01/retry?fromStart=true", "", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r.decode(t, &run)
	require.Equal(t, "PENDING", run.State)

	do(t, s, http.MethodPost, "/v1/workflows/wf-01/retry", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
	do(t, s, http.MethodPost, "/v1/workflows/wf-01/retry?fromStart=perhaps", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
	e = do(t, s, http.MethodPost, "/v1/workflows/nope/retry", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
	require.Equal(t, "workflow nope not found", e.Message)
	do(t, s, http.MethodPost, "/v1/workflows/nope/cancel", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)

	// Cancelled, the workflow can be deleted; created again, it numbers its
	// run after the old ones.
	do(t, s, http.MethodPost, "/v1/workflows/wf-01/cancel", "", "")
	require.Equal(t, http.StatusOK, do(t, s, http.MethodDelete, "/v1/workflows/wf-01", "", "").Status)
	r = do(t, s, http.MethodPost, "/v1/workflows", "", apitest.WorkflowYAML("wf-01", "basic", "node-01", "52:54:00:10:00:01"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, 2, r.object(t).Status.Run.Number)

	var actors []state.Actor
	for _, ev := range events(t, s) {
		if ev.Type == state.EventRunState {
			actors = append(actors, ev.Actor)
		}
	}
	for _, a := range actors {
		require.Equal(t, state.APIUser("anonymous"), a)
	}
}

func TestRetryWithoutEngine(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithoutWorkflows())
	seedFleet(t, s, "")
	e := do(t, s, http.MethodPost, "/v1/workflows/wf-01/retry", "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, "this server runs no workflow engine, so runs cannot be retried or cancelled", e.Message)
	do(t, s, http.MethodPost, "/v1/workflows/wf-01/cancel", "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
}

// TestWorkflowOnTwoMachines: a workflow whose hardwareMap names another
// machine's MAC (a task of its template runs there) is accepted through
// the API as from Git, and that machine cannot be deleted while the
// workflow uses it.
func TestWorkflowOnTwoMachines(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	body := apitest.WorkflowYAML("wf-pair", "basic", "node-01", "52:54:00:10:00:01") + "    device_2: \"52:54:00:10:00:02\"\n"
	r := do(t, s, http.MethodPost, "/v1/workflows", "", body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

	e := do(t, s, http.MethodDelete, "/v1/hardware/node-02", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
	require.Equal(t, "hardware node-02 is used by workflow(s) wf-pair; delete those first", e.Message)

	// While the run holds node-02, node-02 shows it, not the workflow of
	// its own that waits.
	r = do(t, s, http.MethodPost, "/v1/workflows", "", apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.UpdateRun(t, "wf-pair", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State, r.Machines = state.RunRunning, []string{"node-02"}
	})
	o := do(t, s, http.MethodGet, "/v1/hardware/node-02", "", "").object(t)
	require.Equal(t, &client.HardwareWorkflow{Name: "wf-pair", Run: 1, State: "RUNNING"}, o.Status.Workflow)
}
