package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// TestNextActionRidesOnTheReport: a report that ends an action and asks
// for the next (next=true) gets the next action in its answer, handed out
// as a long poll would have; an answer lost on the way costs nothing (the
// long poll hands the same attempt out again); a report that does not ask,
// or does not end an action, is answered exactly as before.
func TestNextActionRidesOnTheReport(t *testing.T) {
	s := newScenario(t)
	s.workflow("wf", action{name: "one", script: "true"}, action{name: "two", script: "true"}, action{name: "three", script: "true"})
	m := MustRunMain(t, s.repo)
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// post sends a report as raw JSON and returns status and body.
	post := func(query string, rep client.WorkerReport) (int, string) {
		t.Helper()
		b, err := json.Marshal(rep)
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Addr()+"/v1/workers/node-01/actions/report"+query, bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	report := func(a *client.WorkerAction, st state.RunState) client.WorkerReport {
		return client.WorkerReport{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: st}
	}

	waitRun(t, m.Store, "wf", 20*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	first, err := c.NextAction(ctx, "node-01", 20*time.Second)
	require.NoError(t, err)
	require.NotNil(t, first)
	require.Equal(t, "one", first.Name)

	// RUNNING ends nothing: asking changes nothing in the answer.
	code, body := post("?next=true", report(first, state.RunRunning))
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"result":"accepted"}`, body)
	code, body = post("?next=maybe", report(first, state.RunRunning))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "next must be true or false")

	// SUCCESS with next=true: the second action comes with the answer.
	second, err := c.ReportActionNext(ctx, "node-01", report(first, state.RunSuccess))
	require.NoError(t, err)
	require.NotNil(t, second, "the next action was ready at once")
	require.Equal(t, "two", second.Name)
	require.Equal(t, 1, second.Action)
	require.Equal(t, first.Workflow, second.Workflow)
	require.Equal(t, first.Run, second.Run)

	// Had that answer been lost, the long poll hands out the same attempt.
	again, err := c.NextAction(ctx, "node-01", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, second, again)
	run := waitRun(t, m.Store, "wf", 10*time.Second, func(r *state.WorkflowRun) bool { return r.CurrentAction == 1 })
	require.Equal(t, 1, run.Actions[1].Attempt, "handing out again is not a new attempt")

	// Without next=true the answer is what it always was.
	require.NoError(t, c.ReportAction(ctx, "node-01", report(second, state.RunRunning)))
	code, body = post("", report(second, state.RunSuccess))
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"result":"accepted"}`, body)
	third, err := c.NextAction(ctx, "node-01", 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, third)
	require.Equal(t, "three", third.Name)

	// The last action's result: nothing comes next, and the run ends.
	require.NoError(t, c.ReportAction(ctx, "node-01", report(third, state.RunRunning)))
	none, err := c.ReportActionNext(ctx, "node-01", report(third, state.RunSuccess))
	require.NoError(t, err)
	require.Nil(t, none)
	run = waitRun(t, m.Store, "wf", 10*time.Second, terminal)
	require.Equal(t, state.RunSuccess, run.State)
}
