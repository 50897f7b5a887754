package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Workflow sets are declared in Git only (their workflows are what the API
// may override, with force); /v1/workflowsets reads them with their
// rollout status and resumes a paused one.

// handleWorkflowSets lists the sets: GET /v1/workflowsets.
func (s *Server) handleWorkflowSets(w http.ResponseWriter, r *http.Request, _ *call) error {
	q := r.URL.Query()
	sel, err := state.ParseSelector(q.Get("labelSelector"))
	if err != nil {
		return err
	}
	out := client.WorkflowSetList{Kind: schema.KindWorkflowSet + "List", Items: []client.WorkflowSet{}}
	oq := state.ObjectQuery{Kind: schema.KindWorkflowSet, Namespace: q.Get("namespace"), Selector: sel, Limit: 1000}
	for {
		page, err := s.store.ListObjects(r.Context(), oq)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			ws, err := s.wireSet(r.Context(), o)
			if err != nil {
				return err
			}
			out.Items = append(out.Items, *ws)
		}
		if oq.Continue = page.Continue; oq.Continue == "" {
			return writeJSON(w, http.StatusOK, out)
		}
	}
}

// handleWorkflowSet reads one set: GET /v1/workflowsets/{name}.
func (s *Server) handleWorkflowSet(w http.ResponseWriter, r *http.Request, c *call) error {
	o, err := s.loadSet(r.Context(), r, c)
	if err != nil {
		return err
	}
	return s.writeSet(w, r, o)
}

// handleResumeSet resumes a paused set: POST /v1/workflowsets/{name}/resume.
func (s *Server) handleResumeSet(w http.ResponseWriter, r *http.Request, c *call) error {
	o, err := s.loadSet(r.Context(), r, c)
	if err != nil {
		return err
	}
	o, err = reconciler.ResumeSet(r.Context(), s.store, o.Key(), c.actor())
	if err != nil {
		return err
	}
	return s.writeSet(w, r, o)
}

// writeSet answers with one set.
func (s *Server) writeSet(w http.ResponseWriter, r *http.Request, o *state.Object) error {
	ws, err := s.wireSet(r.Context(), o)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ws)
}

func (s *Server) loadSet(ctx context.Context, r *http.Request, c *call) (*state.Object, error) {
	key := state.ObjectKey{Kind: schema.KindWorkflowSet, Namespace: r.URL.Query().Get("namespace"), Name: c.params.ByName("name")}
	o, err := s.store.GetObject(ctx, key)
	if state.ErrorCode(err) == state.ENOTFOUND {
		return nil, Errorf(state.ENOTFOUND, "workflow set %s not found", key.Name)
	}
	return o, err
}

// wireSet is a stored set as the API shows it, with its rollout status.
func (s *Server) wireSet(ctx context.Context, o *state.Object) (*client.WorkflowSet, error) {
	st, err := reconciler.WorkflowSetStatus(ctx, s.store, o)
	if err != nil {
		return nil, err
	}
	return &client.WorkflowSet{
		APIVersion: schema.SetAPIVersion,
		Kind:       schema.KindWorkflowSet,
		Metadata:   client.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, Annotations: o.Annotations, ResourceVersion: strconv.FormatUint(o.ResourceVersion, 10)},
		Spec:       o.Spec,
		Status:     client.WorkflowSetStatus{Source: string(o.Source), Revision: o.Revision, File: o.File, Rollout: *st},
	}, nil
}
