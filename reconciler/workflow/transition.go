package workflow

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/tinkops/tinkops/state"
)

// actionEnded tells the observer that the attempt of action i of run, as
// written, ended with result.
func (e *Engine) actionEnded(run *state.WorkflowRun, i int, result state.RunState) {
	if e.obs == nil || run == nil || i < 0 || i >= len(run.Actions) {
		return
	}
	a := &run.Actions[i]
	e.obs.ActionEnded(run.Template, a.Name, result, max(a.FinishedAt.Sub(a.StartedAt), 0))
}

// lock returns the writer lock of one run.
func (e *Engine) lock(key state.RunKey) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.locks[key]
	if !ok {
		l = &sync.Mutex{}
		e.locks[key] = l
	}
	return l
}

// transition applies change to the current version of a run and writes it
// durably. change returns false to write nothing. Runs of different
// machines change concurrently; one run changes one at a time.
func (e *Engine) transition(ctx context.Context, key state.RunKey, actor state.Actor, change func(r *state.WorkflowRun) (bool, error)) error {
	_, err := e.transitionRun(ctx, key, actor, change)
	return err
}

// transitionOnce is transition returning the run as it now is, without
// the retry on a conflict that transitionRun adds.
func (e *Engine) transitionOnce(ctx context.Context, key state.RunKey, actor state.Actor, change func(r *state.WorkflowRun) (bool, error)) (*state.WorkflowRun, error) {
	l := e.lock(key)
	l.Lock()
	defer l.Unlock()
	e.mu.Lock()
	cur, ok := e.runs[key]
	e.mu.Unlock()
	if !ok {
		r, err := e.store.GetRun(ctx, key)
		if err != nil {
			return nil, err
		}
		cur = r
	}
	next := cloneRun(cur)
	write, err := change(next)
	if err != nil {
		return nil, err
	}
	if !write {
		return cur, nil
	}
	if next.State == state.RunSuccess && next.AllowPXE != nil && *next.AllowPXE {
		// toggleAllowNetboot: a machine that installed must not install
		// again on its next boot.
		next.AllowPXE = new(false)
		next.Reason += "; PXE no longer allowed"
	}
	e.mu.Lock()
	e.writing[key] = 0
	e.mu.Unlock()
	written, err := e.store.PutRun(ctx, actor, next)
	e.mu.Lock()
	other := e.writing[key] // an event followRuns left to this write
	delete(e.writing, key)
	if err != nil {
		if state.ErrorCode(err) == state.ECONFLICT {
			// Someone else wrote the run (an API retry, a second engine):
			// read it again next time.
			e.setRunLocked(key, nil)
		}
		e.mu.Unlock()
		if other > 0 && state.ErrorCode(err) != state.ECONFLICT {
			// The event was not ours: read what another wrote.
			e.refreshRunAfter(ctx, key)
		}
		return nil, err
	}
	if written.State.Terminal() {
		e.setRunLocked(key, nil)
		delete(e.locks, key)
		if !cur.State.Terminal() {
			e.ended[key] = written.ResourceVersion // its run-state event is to come
		}
	} else {
		e.setRunLocked(key, written)
	}
	e.mu.Unlock()
	if other > written.ResourceVersion {
		// Another replica wrote the run after this write did.
		e.refreshRunAfter(ctx, key)
	}
	e.notify(hwKey(written.Namespace, written.Hardware))
	e.logTransition(cur, written, actor)
	if written.State.Terminal() && !cur.State.Terminal() {
		e.finishIfLeader(written.Key(), written)
	}
	return written, nil
}

// runAttrs are the log attributes of a line about run r: workflow, run,
// hardware and action (the current one, or the last once all are done),
// with the namespace when there is one.
func runAttrs(r *state.WorkflowRun) []any {
	action := ""
	if i := r.CurrentAction; i < len(r.Actions) {
		action = r.Actions[i].Name
	} else if n := len(r.Actions); n > 0 {
		action = r.Actions[n-1].Name
	}
	attrs := []any{"workflow", r.Workflow, "run", r.Number, "hardware", r.Hardware, "action", action}
	if r.Namespace != "" {
		attrs = append(attrs, "namespace", r.Namespace)
	}
	return attrs
}

// keyAttrs are the attributes of a line about a run known only by its key.
func keyAttrs(k state.RunKey) []any {
	attrs := []any{"workflow", k.Workflow, "run", k.Number}
	if k.Namespace != "" {
		attrs = append(attrs, "namespace", k.Namespace)
	}
	return attrs
}

// logTransition writes one line per change of a run's state (info) or of
// its current action's state (debug), each carrying workflow, run,
// hardware and action, so an operator can follow one run through the log
// with a single filter.
func (e *Engine) logTransition(before, after *state.WorkflowRun, actor state.Actor) {
	switch {
	case before.State != after.State:
		e.log.Info("run "+strings.ToLower(string(after.State)), append(runAttrs(after), "from", string(before.State), "reason", after.Reason, "actor", string(actor))...)
	case e.log.Enabled(context.Background(), slog.LevelDebug):
		// Only here is the action's state worth working out: this runs on
		// every transition, thousands a second, mostly not logged.
		actionState := state.RunState("")
		if i := after.CurrentAction; i < len(after.Actions) {
			actionState = after.Actions[i].State
		} else if n := len(after.Actions); n > 0 {
			actionState = after.Actions[n-1].State
		}
		prev := state.RunState("")
		if i := after.CurrentAction; i < len(before.Actions) && before.CurrentAction == i {
			prev = before.Actions[i].State
		}
		if prev != actionState || before.CurrentAction != after.CurrentAction {
			e.log.Debug("action "+strings.ToLower(string(actionState)), append(runAttrs(after), "reason", after.Reason, "actor", string(actor))...)
		}
	}
}

func cloneRun(r *state.WorkflowRun) *state.WorkflowRun {
	c := *r
	c.Actions = slices.Clone(r.Actions)
	c.Machines = slices.Clone(r.Machines)
	return &c
}
