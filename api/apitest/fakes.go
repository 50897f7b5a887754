package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/state"
)

// FakeSyncer stands in for the reconciler loop: Sync records a successful
// sync of Revision, Suspend and Resume flip the stored flag, each with an
// event naming the actor, as the real one does.
type FakeSyncer struct {
	Store state.Store
	// Err, when set, is returned by Sync.
	Err error

	ready atomic.Bool
	mu    sync.Mutex
	syncs int
}

var _ api.Syncer = (*FakeSyncer)(nil)

// SetReady sets what Ready reports.
func (f *FakeSyncer) SetReady(v bool) { f.ready.Store(v) }

// Ready implements api.Syncer.
func (f *FakeSyncer) Ready() bool { return f.ready.Load() }

// Syncs returns how many syncs ran.
func (f *FakeSyncer) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Sync implements api.Syncer.
func (f *FakeSyncer) Sync(ctx context.Context) error {
	if f.Err != nil {
		return f.Err
	}
	prev, err := f.Store.SyncStatus(ctx)
	if err != nil {
		return err
	}
	if prev.Suspended {
		return state.Errorf(state.ECONFLICT, "reconciliation is suspended; resume it first")
	}
	f.mu.Lock()
	f.syncs++
	f.mu.Unlock()
	st := *prev
	st.LastAttemptedRevision, st.LastAppliedRevision, st.Errors = Revision, Revision, nil
	_, err = f.Store.Apply(ctx, &state.Batch{Actor: state.ActorGit, Revision: Revision, Sync: &st,
		Events: []state.Event{{Type: state.EventSync, Message: "applied " + Revision}}})
	return err
}

// Suspend implements api.Syncer.
func (f *FakeSyncer) Suspend(ctx context.Context, actor state.Actor) error {
	return f.setSuspended(ctx, actor, true)
}

// Resume implements api.Syncer.
func (f *FakeSyncer) Resume(ctx context.Context, actor state.Actor) error {
	return f.setSuspended(ctx, actor, false)
}

func (f *FakeSyncer) setSuspended(ctx context.Context, actor state.Actor, v bool) error {
	prev, err := f.Store.SyncStatus(ctx)
	if err != nil {
		return err
	}
	st := *prev
	st.Suspended = v
	msg := "reconciliation resumed"
	if v {
		msg = "reconciliation suspended"
	}
	_, err = f.Store.Apply(ctx, &state.Batch{Actor: actor, Sync: &st, Events: []state.Event{{Type: state.EventSync, Message: msg}}})
	return err
}

// FakeWorkflows stands in for the workflow engine: Retry puts a failed run
// back to PENDING (its failed and later actions, or all with fromStart),
// Cancel ends a run that has not ended.
type FakeWorkflows struct {
	Store state.Store
}

var _ api.Workflows = (*FakeWorkflows)(nil)

func (f *FakeWorkflows) latest(ctx context.Context, wf state.ObjectKey) (*state.WorkflowRun, error) {
	obj, err := f.Store.GetObject(ctx, wf)
	if err != nil {
		return nil, err
	}
	var st struct {
		LastRun int `json:"lastRun"`
	}
	_ = json.Unmarshal(obj.Status, &st)
	if st.LastRun == 0 {
		return nil, state.Errorf(state.ENOTFOUND, "workflow %s has never run", wf.Name)
	}
	return f.Store.GetRun(ctx, state.RunKey{Namespace: wf.Namespace, Workflow: wf.Name, Number: st.LastRun})
}

// Retry implements api.Workflows.
func (f *FakeWorkflows) Retry(ctx context.Context, actor state.Actor, wf state.ObjectKey, fromStart bool) (*state.WorkflowRun, error) {
	run, err := f.latest(ctx, wf)
	if err != nil {
		return nil, err
	}
	if !run.State.Terminal() || run.State == state.RunSuccess {
		return nil, state.Errorf(state.ECONFLICT, "run %d of workflow %s is %s; only a run that failed, timed out or was cancelled can be retried", run.Number, wf.Name, run.State)
	}
	first := run.CurrentAction
	if fromStart {
		first = 0
	}
	for i := first; i < len(run.Actions); i++ {
		run.Actions[i].State = state.RunPending
		run.Actions[i].Message = ""
	}
	run.CurrentAction = min(first, len(run.Actions))
	run.State = state.RunPending
	run.Reason = fmt.Sprintf("retried by %s", actor)
	return f.Store.PutRun(ctx, actor, run)
}

// Cancel implements api.Workflows.
func (f *FakeWorkflows) Cancel(ctx context.Context, actor state.Actor, wf state.ObjectKey) (*state.WorkflowRun, error) {
	run, err := f.latest(ctx, wf)
	if err != nil {
		return nil, err
	}
	if run.State.Terminal() {
		return nil, state.Errorf(state.ECONFLICT, "run %d of workflow %s has already ended (%s)", run.Number, wf.Name, run.State)
	}
	run.State = state.RunCancelled
	run.Reason = fmt.Sprintf("cancelled by %s", actor)
	return f.Store.PutRun(ctx, actor, run)
}
