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

// LastRun reads the number of a stored workflow's latest run from its
// status (0: it never ran). The reconciler and the API keep it there, so
// finding a workflow's run needs no scan of the run history.
func LastRun(o *state.Object) int {
	if o == nil || len(o.Status) == 0 {
		return 0
	}
	var s workflowStatus
	_ = json.Unmarshal(o.Status, &s) // other writers' fields are ignored
	return s.LastRun
}

// WithLastRun returns a workflow's status with its latest run number set
// to n, keeping every other field.
func WithLastRun(status json.RawMessage, n int) json.RawMessage {
	return withStatus(status, "lastRun", n)
}

// withStatus returns status with one field set, keeping every other
// field: several writers keep their own fields in an object's status.
func withStatus(status json.RawMessage, key string, v any) json.RawMessage {
	m := map[string]any{}
	if len(status) > 0 {
		_ = json.Unmarshal(status, &m)
	}
	m[key] = v
	b, _ := json.Marshal(m)
	return b
}

// runNeeds is what a plan needs to know about runs: those of the
// workflows it may create, change or prune (to number a new run after the
// highest one, and to wait for an active one), and, when it may prune
// hardware, every active run (runs are not indexed by hardware).
type runNeeds struct {
	workflows map[state.ObjectKey]bool
	hardware  bool
}

// needsRuns finds what MakePlan will ask about runs, or more: a workflow
// whose stored object differs in any way from the declared one is counted,
// though MakePlan may find the difference immaterial.
func needsRuns(desired []*state.Object, have map[state.ObjectKey]*state.Object, opts Options) runNeeds {
	n := runNeeds{workflows: map[state.ObjectKey]bool{}}
	for _, d := range desired {
		if d.Kind != state.KindWorkflow {
			continue
		}
		key := d.Key()
		if !clean(have[key], d) {
			n.workflows[key] = true
		}
	}
	if !opts.Prune {
		return n // orphans are kept whatever their runs
	}
	// Only when some Git-managed object is no longer declared is it worth
	// finding which (as in makePlan).
	gitCount, matched := 0, 0
	for _, a := range have {
		if a.Source == state.SourceGit {
			gitCount++
		}
	}
	for _, d := range desired {
		if a := have[d.Key()]; a != nil && a.Source == state.SourceGit {
			matched++
		}
	}
	if matched == gitCount {
		return n
	}
	declared := make(map[state.ObjectKey]bool, len(desired))
	for _, d := range desired {
		declared[d.Key()] = true
	}
	for key, a := range have {
		if a.Source != state.SourceGit || declared[key] {
			continue
		}
		switch key.Kind {
		case state.KindWorkflow:
			n.workflows[key] = true
		case state.KindHardware:
			n.hardware = true
		}
	}
	return n
}

// maxRunLookups is how many workflows' runs are read one workflow at a
// time; for more, one scan of every run is cheaper.
const maxRunLookups = 256

// readRuns reads the runs a plan needs: the active ones, and the highest
// run number of each workflow.
func readRuns(ctx context.Context, st state.Store, need runNeeds) ([]*state.WorkflowRun, map[state.ObjectKey]int, error) {
	var active []*state.WorkflowRun
	numbers := map[state.ObjectKey]int{}
	add := func(runs []*state.WorkflowRun) {
		for _, r := range runs {
			k := state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}
			numbers[k] = max(numbers[k], r.Number)
			if !r.State.Terminal() {
				active = append(active, r)
			}
		}
	}
	list := func(q state.RunQuery) error {
		runs, err := state.AllRuns(ctx, st, q)
		if err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		add(runs)
		return nil
	}
	if need.hardware || len(need.workflows) > maxRunLookups {
		return active, numbers, list(state.RunQuery{Limit: 5000})
	}
	for key := range need.workflows {
		if err := list(state.RunQuery{Namespace: key.Namespace, Workflow: key.Name, Limit: 5000}); err != nil {
			return nil, nil, err
		}
	}
	return active, numbers, nil
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
				obj.Status = WithLastRun(obj.Status, r.Number)
			}
			b.Put(obj, fmt.Sprintf("%sd from %s at %s", c.Op, c.File, commit))
		case OpDelete:
			b.Delete(c.Key, c.actual.ResourceVersion, fmt.Sprintf("pruned: no longer in Git at %s", commit))
		}
	}
	b.Runs = append(b.Runs, p.runs...)
	return b
}
