package reconciler

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tinkops/tinkops/state"
)

// workflowStatus is the part of a workflow's stored status the reconciler
// keeps: the number of its latest run, so planning needs no scan of the
// run history.
type workflowStatus struct {
	LastRun int `json:"lastRun,omitempty"`
}

// lastRun reads the latest run number from a stored workflow.
func lastRun(o *state.Object) int {
	if o == nil || len(o.Status) == 0 {
		return 0
	}
	var s workflowStatus
	_ = json.Unmarshal(o.Status, &s) // other writers' fields are ignored
	return s.LastRun
}

// withLastRun returns status with lastRun set, keeping every other field.
func withLastRun(status json.RawMessage, n int) json.RawMessage {
	m := map[string]any{}
	if len(status) > 0 {
		_ = json.Unmarshal(status, &m)
	}
	m["lastRun"] = n
	b, _ := json.Marshal(m)
	return b
}

// readActual reads what MakePlan needs from the store: every object, and
// the runs that have not ended.
func readActual(ctx context.Context, st state.Store) (Actual, error) {
	var a Actual
	var cont string
	for {
		page, err := st.ListObjects(ctx, state.ObjectQuery{Limit: 5000, Continue: cont})
		if err != nil {
			return a, fmt.Errorf("read objects: %w", err)
		}
		a.Objects = append(a.Objects, page.Objects...)
		if cont = page.Continue; cont == "" {
			break
		}
	}
	cont = ""
	for {
		page, err := st.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunPending, state.RunPreparing, state.RunRunning}, Limit: 5000, Continue: cont})
		if err != nil {
			return a, fmt.Errorf("read runs: %w", err)
		}
		a.Runs = append(a.Runs, page.Runs...)
		if cont = page.Continue; cont == "" {
			break
		}
	}
	return a, nil
}

// batch turns a plan into one atomic store batch: every object change with
// its event naming the commit, the runs it starts, and the sync status.
func (p *Plan) batch(commit string) *state.Batch {
	b := &state.Batch{Actor: state.ActorGit, Revision: p.Revision}
	runsByWorkflow := map[state.ObjectKey]*state.WorkflowRun{}
	for _, r := range p.runs {
		runsByWorkflow[state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}] = r
	}
	for _, c := range p.Changes {
		switch c.Op {
		case OpCreate, OpUpdate:
			obj := c.desired
			if r := runsByWorkflow[c.Key]; r != nil {
				obj.Status = withLastRun(obj.Status, r.Number)
			}
			b.Put(obj, fmt.Sprintf("%sd from %s at %s", c.Op, c.File, commit))
		case OpDelete:
			b.Delete(c.Key, c.actual.ResourceVersion, fmt.Sprintf("pruned: no longer in Git at %s", commit))
		}
	}
	b.Runs = append(b.Runs, p.runs...)
	return b
}
