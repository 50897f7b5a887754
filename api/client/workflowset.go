package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/tinkops/tinkops/state"
)

// WorkflowSets is the resource of workflow sets (tinkops.dev/v1alpha1).
// Sets are declared in Git only; the API reads them and resumes them.
const WorkflowSets Resource = "workflowsets"

// WorkflowSet is a set as GET /v1/workflowsets/{name} returns it.
type WorkflowSet struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ObjectMeta        `json:"metadata"`
	Spec       json.RawMessage   `json:"spec,omitempty"`
	Status     WorkflowSetStatus `json:"status"`
}

// WorkflowSetStatus is where a set comes from and what its rollout does.
type WorkflowSetStatus struct {
	Source   string                  `json:"source"`
	Revision string                  `json:"revision,omitempty"`
	File     string                  `json:"file,omitempty"`
	Rollout  state.WorkflowSetStatus `json:"rollout"`
}

// WorkflowSetList is GET /v1/workflowsets.
type WorkflowSetList struct {
	Kind  string        `json:"kind"`
	Items []WorkflowSet `json:"items"`
}

// WorkflowSets lists the sets in namespace (empty: all) matching selector.
func (c *Client) WorkflowSets(ctx context.Context, namespace, selector string) (*WorkflowSetList, error) {
	q := nsQuery(namespace)
	setIf(q, "labelSelector", selector)
	var out WorkflowSetList
	if err := c.do(ctx, http.MethodGet, "/v1/"+string(WorkflowSets), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkflowSet reads one set with its rollout status.
func (c *Client) WorkflowSet(ctx context.Context, namespace, name string) (*WorkflowSet, error) {
	var out WorkflowSet
	if err := c.do(ctx, http.MethodGet, objectPath(WorkflowSets, name), nsQuery(namespace), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResumeWorkflowSet resumes a paused set: the failures so far are accepted
// and its machines start again in waves.
func (c *Client) ResumeWorkflowSet(ctx context.Context, namespace, name string) (*WorkflowSet, error) {
	var out WorkflowSet
	if err := c.do(ctx, http.MethodPost, objectPath(WorkflowSets, name)+"/resume", nsQuery(namespace), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
