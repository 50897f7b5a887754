package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tinkops/tinkops/state"
)

// WorkerAction is an action handed to a machine's worker.
type WorkerAction = state.WorkerAction

// WorkerReport is what a worker says about an action.
type WorkerReport = state.WorkerReport

func workerPath(id, rest string) string {
	return "/v1/workers/" + url.PathEscape(id) + "/actions/" + rest
}

// NextAction long-polls for the next action of the machine id (hardware
// name or MAC), waiting up to wait; nil when none came.
func (c *Client) NextAction(ctx context.Context, id string, wait time.Duration) (*WorkerAction, error) {
	q := url.Values{"wait": {wait.String()}}
	req, err := c.newRequest(ctx, http.MethodGet, workerPath(id, "next"), q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, nil
	}
	var a WorkerAction
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&a); err != nil {
		return nil, err
	}
	return &a, nil
}

// ReportAction reports on an action. A *Error with code "conflict" means
// the server will never take this report (a stale attempt, an ended run).
func (c *Client) ReportAction(ctx context.Context, id string, r WorkerReport) error {
	return c.do(ctx, http.MethodPost, workerPath(id, "report"), nil, r, nil)
}

// WorkerReportAnswer is the server's answer to a report.
type WorkerReportAnswer struct {
	Result string `json:"result"`
	// Next is the machine's next action, handed out with the answer: only
	// when the report asked for it (next=true), ended an action, and the
	// next action was ready at once.
	Next *WorkerAction `json:"next,omitempty"`
}

// ReportActionNext is ReportAction that also asks for the machine's next
// action in the same request, for a report that ends an action (SUCCESS,
// FAILED, TIMEOUT): the action comes back with the answer when it is ready
// at once, saving the worker a long poll per action. nil means none was
// ready (ask with NextAction as usual). An action handed out this way and
// lost with the answer is handed out again by the next NextAction.
func (c *Client) ReportActionNext(ctx context.Context, id string, r WorkerReport) (*WorkerAction, error) {
	var ans WorkerReportAnswer
	if err := c.do(ctx, http.MethodPost, workerPath(id, "report"), url.Values{"next": {"true"}}, r, &ans); err != nil {
		return nil, err
	}
	return ans.Next, nil
}
