package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// workflowKind serves /v1/workflows. Writing a workflow starts a run as a
// sync would: a new workflow runs once; a change to its spec (other than
// disabled) runs it again, after the current run ends; a disabled workflow
// does not run. The run is written in the same batch as the workflow.
func (s *Server) workflowKind() *kind {
	k := &kind{s: s, res: client.Workflows, kind: state.KindWorkflow}
	k.check = func(ctx context.Context, _ *state.Object, p *pushed) error {
		return s.checkWorkflow(ctx, p)
	}
	k.runs = s.workflowRuns
	k.decorate = s.decorateWorkflows
	k.byHardware = s.workflowsOf
	k.beforeDelete = func(ctx context.Context, obj *state.Object) error {
		run, err := s.latestRun(ctx, obj)
		if err != nil || run == nil || run.State.Terminal() {
			return err
		}
		return Errorf(state.ECONFLICT, "workflow %s has run %d %s; cancel it first (tink workflow cancel %s)", obj.Name, run.Number, run.State, obj.Name)
	}
	return k
}

// workflowRuns decides whether a write starts a run, with the rule a sync
// uses (reconciler.StartsRun), and if so records its number in the
// workflow's status.
func (s *Server) workflowRuns(ctx context.Context, old *state.Object, p *pushed, who *Principal) ([]*state.WorkflowRun, error) {
	wf, ok := p.decoded.(*schema.Workflow)
	if !ok {
		return nil, nil
	}
	last := 0
	reason := "created through the API by " + who.Name
	if old != nil {
		last = reconciler.LastRun(old)
		reason = "enabled through the API by " + who.Name
		if last > 0 {
			reason = "spec changed through the API by " + who.Name
		}
	}
	var changes []reconciler.FieldChange
	if last > 0 {
		changes = reconciler.Diff(old, p.obj)
	}
	if !reconciler.StartsRun(wf, last, changes) {
		return nil, nil
	}
	// Runs of an earlier workflow of the same name stay in the store; a new
	// run numbers after them.
	runs, err := state.AllRuns(ctx, s.store, state.RunQuery{Namespace: p.obj.Namespace, Workflow: p.obj.Name})
	if err != nil {
		return nil, err
	}
	stored := 0
	var prev *state.WorkflowRun
	for _, r := range runs {
		if r.Number > stored {
			stored, prev = r.Number, r
		}
	}
	if prev != nil && !prev.State.Terminal() {
		reason += fmt.Sprintf("; waits for run %d, now %s, to end", prev.Number, prev.State)
	}
	run := reconciler.PendingRun(wf, reconciler.NextRunNumber(last, stored), reason)
	p.obj.Status = reconciler.WithLastRun(p.obj.Status, run.Number)
	return []*state.WorkflowRun{run}, nil
}

// workflowsOf returns the workflows whose hardwareRef names hw, in name
// order, found through the fleet index.
func (s *Server) workflowsOf(ctx context.Context, hw state.ObjectKey) ([]*state.Object, error) {
	var keys []state.ObjectKey
	err := s.index.view(ctx, s.store, func(ix *fleetIndex) {
		for wk := range ix.machines[hw].all() {
			keys = append(keys, wk)
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(keys, func(a, b state.ObjectKey) int { return strings.Compare(a.Name, b.Name) })
	out := make([]*state.Object, 0, len(keys))
	for _, key := range keys {
		o, err := s.store.GetObject(ctx, key)
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue // deleted since the index was read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// latestRun returns a workflow's latest run, nil if it never ran.
func (s *Server) latestRun(ctx context.Context, wf *state.Object) (*state.WorkflowRun, error) {
	n := reconciler.LastRun(wf)
	if n == 0 {
		return nil, nil
	}
	run, err := s.store.GetRun(ctx, state.RunKey{Namespace: wf.Namespace, Workflow: wf.Name, Number: n})
	if state.ErrorCode(err) == state.ENOTFOUND {
		return nil, nil
	}
	return run, err
}

// decorateWorkflows shows status.run: each workflow's latest run, with its
// actions when one workflow is read.
func (s *Server) decorateWorkflows(ctx context.Context, objs []*state.Object, full bool, kept []*listItem) ([]extras, error) {
	out := make([]extras, len(objs))
	var keys []state.RunKey
	var of []int // the object of each key
	for i, o := range objs {
		n := 0
		if it := kept[i]; it != nil {
			n = it.derived.lastRun
		} else {
			n = reconciler.LastRun(o)
		}
		out[i].derived.lastRun = n
		if n > 0 {
			keys = append(keys, state.RunKey{Namespace: o.Namespace, Workflow: o.Name, Number: n})
			of = append(of, i)
		}
	}
	runs, err := s.getRuns(ctx, keys)
	if err != nil {
		return nil, err
	}
	for j, run := range runs {
		if run != nil {
			e := &out[of[j]]
			e.run, e.withActions = run, full
			e.stamp.run, e.stamp.runVersion = run.Number, run.ResourceVersion
		}
	}
	return out, nil
}

// getRuns reads runs, nil where there is none: in one snapshot when the
// store can (state.RunsGetter).
func (s *Server) getRuns(ctx context.Context, keys []state.RunKey) ([]*state.WorkflowRun, error) {
	if g, ok := s.store.(state.RunsGetter); ok {
		return g.GetRuns(ctx, keys)
	}
	out := make([]*state.WorkflowRun, len(keys))
	for i, key := range keys {
		run, err := s.store.GetRun(ctx, key)
		switch state.ErrorCode(err) {
		case "":
			out[i] = run
		case state.ENOTFOUND:
		default:
			return nil, err
		}
	}
	return out, nil
}

// runSummary shows a run without what its rendering may hide: commands and
// environments can carry a template's secrets.
func runSummary(r *state.WorkflowRun, withActions bool) *client.Run {
	out := &client.Run{
		Number:       r.Number,
		State:        string(r.State),
		Reason:       r.Reason,
		Template:     r.Template,
		Hardware:     r.Hardware,
		Revision:     r.Revision,
		ActionsTotal: len(r.Actions),
		CreatedAt:    r.CreatedAt,
		StartedAt:    r.StartedAt,
		FinishedAt:   r.FinishedAt,
		Deadline:     r.Deadline,
	}
	for _, a := range r.Actions {
		if a.State == state.RunSuccess {
			out.ActionsDone++
		}
		if withActions {
			out.Actions = append(out.Actions, client.RunAction{
				Task: a.Task, Name: a.Name, Image: a.Image, Worker: a.Worker, State: string(a.State),
				Attempt: a.Attempt, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Message: a.Message,
			})
		}
	}
	if r.CurrentAction >= 0 && r.CurrentAction < len(r.Actions) {
		a := r.Actions[r.CurrentAction]
		out.CurrentAction = a.Task + "/" + a.Name
		out.CurrentActionStartedAt = a.StartedAt
	}
	return out
}

// workflowRefs reads a stored workflow's template and hardware names.
func workflowRefs(o *state.Object) (template, hardware string) {
	var spec struct {
		TemplateRef string `json:"templateRef"`
		HardwareRef string `json:"hardwareRef"`
	}
	_ = json.Unmarshal(o.Spec, &spec)
	return spec.TemplateRef, spec.HardwareRef
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request, c *call) error {
	fromStart, err := queryBool(r, "fromStart")
	if err != nil {
		return err
	}
	return s.steer(w, r, c, func(ctx context.Context, key state.ObjectKey) (*state.WorkflowRun, error) {
		return s.workflows.Retry(ctx, c.actor(), key, fromStart)
	})
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.steer(w, r, c, func(ctx context.Context, key state.ObjectKey) (*state.WorkflowRun, error) {
		return s.workflows.Cancel(ctx, c.actor(), key)
	})
}

// steer runs retry or cancel on the workflow engine and answers with the run.
func (s *Server) steer(w http.ResponseWriter, r *http.Request, c *call, fn func(context.Context, state.ObjectKey) (*state.WorkflowRun, error)) error {
	if s.workflows == nil {
		return Errorf(EUNAVAILABLE, "this server runs no workflow engine, so runs cannot be retried or cancelled")
	}
	key := state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.URL.Query().Get("namespace"), Name: c.params.ByName("name")}
	if _, err := s.store.GetObject(r.Context(), key); state.ErrorCode(err) == state.ENOTFOUND {
		return Errorf(state.ENOTFOUND, "workflow %s not found", key.Name)
	} else if err != nil {
		return err
	}
	run, err := fn(r.Context(), key)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, runSummary(run, true))
}
