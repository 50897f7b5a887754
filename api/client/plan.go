package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/tinkops/tinkops/state"
)

// PlanResult is what POST /v1/plan answers: the repository's errors, or
// the plan of what applying it would do.
type PlanResult struct {
	Revision string `json:"revision"`
	// Errors are the repository's errors; there is no plan then.
	Errors       []state.SyncError `json:"errors,omitempty"`
	Changes      []PlanChange      `json:"changes,omitempty"`
	Unchanged    int               `json:"unchanged"`
	Blocked      string            `json:"blocked,omitempty"`
	Consequences []string          `json:"consequences,omitempty"`
	// Empty is true when applying would change nothing.
	Empty bool `json:"empty"`
	// Text and Markdown are the plan rendered for a terminal and for a
	// pull-request comment.
	Text     string `json:"text,omitempty"`
	Markdown string `json:"markdown,omitempty"`
}

// PlanChange is what a plan does to one object.
type PlanChange struct {
	Op           string          `json:"op"`
	Key          state.ObjectKey `json:"key"`
	File         string          `json:"file,omitempty"`
	Fields       []PlanField     `json:"fields,omitempty"`
	Consequences []string        `json:"consequences,omitempty"`
}

// PlanField is one field a change touches.
type PlanField struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// Plan sends a repository (a gzipped tar of its files) and returns the
// plan against the server's state; nothing is written.
func (c *Client) Plan(ctx context.Context, archive io.Reader, revision string) (*PlanResult, error) {
	q := url.Values{}
	if revision != "" {
		q.Set("revision", revision)
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/plan", q, nil)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(archive)
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out PlanResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		return nil, err
	}
	return &out, nil
}
