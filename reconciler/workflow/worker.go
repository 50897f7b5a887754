package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Assignment is an action handed to a worker.
type Assignment = state.WorkerAction

// Report is what a worker says about an action.
type Report = state.WorkerReport

// maxMessage bounds what a report may store (the tail of the output).
const maxMessage = 4 << 10

// Resolve finds the hardware a worker id names: its name (namespace/name
// outside the default namespace), one of its MACs, or its spec.agentID
// (the id Tinkerbell's agent sends). ENOTFOUND when none does.
func (e *Engine) Resolve(ctx context.Context, id string) (*schema.Hardware, error) {
	return e.hardwareFor(ctx, id)
}

// hardwareFor finds the hardware a worker id names. MACs are looked up in
// an index rebuilt at most once a second on a miss, so a worker polling by
// MAC does not make the engine read the whole fleet each time.
func (e *Engine) hardwareFor(ctx context.Context, id string) (*schema.Hardware, error) {
	return e.lookupHardware(ctx, id, true)
}

// lookupHardware is hardwareFor; keep says whether what it decodes joins
// hwCache. Only a worker's own requests keep it: the cache is for the
// machines that poll, and a fleet's 10,000 runs being prepared would
// otherwise leave 10,000 decoded machines (16 MB) in it that no worker
// asked for.
func (e *Engine) lookupHardware(ctx context.Context, id string, keep bool) (*schema.Hardware, error) {
	get := func(key state.ObjectKey) (*schema.Hardware, error) {
		o, err := e.store.GetObject(ctx, key)
		if err != nil {
			return nil, err
		}
		h, err := reconciler.FromState(o)
		if err != nil {
			return nil, err
		}
		return h.(*schema.Hardware), nil
	}
	e.macMu.Lock()
	c, ok := e.hwCache[id]
	fresh := ok && e.freshLocked(c)
	gen := e.hwGen // a change seen after this makes what is read now stale
	e.macMu.Unlock()
	if fresh {
		return c.hw, nil
	}
	remember := func(hw *schema.Hardware) *schema.Hardware {
		if !keep {
			return hw
		}
		e.macMu.Lock()
		defer e.macMu.Unlock()
		if e.hwCache == nil || len(e.hwCache) > 100_000 {
			e.hwCache = map[string]cachedHardware{}
		}
		e.hwCache[id] = cachedHardware{hw: hw, read: time.Now(), gen: gen}
		return hw
	}
	if ns, name, ok := strings.Cut(id, "/"); ok {
		// namespace/name: never a MAC, and never looked up by name
		// alone, which would find the default namespace's namesake.
		hw, err := get(state.ObjectKey{Kind: state.KindHardware, Namespace: ns, Name: name})
		if err != nil {
			return nil, err
		}
		return remember(hw), nil
	}
	if hw, err := get(state.ObjectKey{Kind: state.KindHardware, Name: id}); err == nil {
		return remember(hw), nil
	}
	e.macMu.Lock()
	key, known := e.macs[id]
	e.macMu.Unlock()
	if known {
		if hw, err := get(key); err == nil && (hw.HasMAC(id) || hw.Spec.AgentID == id) {
			return remember(hw), nil
		}
	}
	// Rebuild the MAC index, once a second at most, one reader at a time.
	e.macMu.Lock()
	defer e.macMu.Unlock()
	if time.Since(e.macsRead) > time.Second || e.macs == nil {
		all, err := state.AllObjects(ctx, e.store, state.ObjectQuery{Kind: state.KindHardware})
		if err != nil {
			return nil, err
		}
		macs := map[string]state.ObjectKey{}
		for _, o := range all {
			h, err := reconciler.FromState(o)
			if err != nil {
				continue
			}
			for _, m := range h.(*schema.Hardware).MACs() {
				macs[m] = o.Key()
			}
			if a := h.(*schema.Hardware).Spec.AgentID; a != "" {
				if _, taken := macs[a]; !taken {
					macs[a] = o.Key() // a MAC wins over another machine's agentID
				}
			}
		}
		e.macs, e.macsRead = macs, time.Now()
		if key, ok := macs[id]; ok {
			hw, err := get(key)
			if err != nil {
				return nil, err
			}
			if !keep {
				return hw, nil
			}
			if e.hwCache == nil {
				e.hwCache = map[string]cachedHardware{}
			}
			e.hwCache[id] = cachedHardware{hw: hw, read: time.Now(), gen: gen}
			return hw, nil
		}
	}
	return nil, state.Errorf(state.ENOTFOUND, "no hardware is named %q or has that MAC", id)
}

// worksFor reports whether a task's worker (a MAC or a hardware name) of a
// run in namespace names hw. A name names the hardware of the run's own
// namespace only: node-01 of another namespace is another machine.
func worksFor(namespace, worker string, hw *schema.Hardware) bool {
	return worker == hw.Metadata.Name && namespace == hw.Metadata.Namespace || hw.HasMAC(worker)
}

// workerActor is how a machine's worker appears in events: its name, with
// its namespace outside the default one.
func workerActor(hw *schema.Hardware) state.Actor { return state.Worker(hardwareID(hw)) }

// hardwareID names hw as a worker token's binding does: namespace/name, or
// the name alone in the default namespace.
func hardwareID(hw *schema.Hardware) string {
	return schema.Key{Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name}.String()
}

// Next hands the worker on machine id (its hardware name or a MAC) its
// next action, waiting up to wait for one; nil when none came. An action
// already handed out and not finished is handed out again to the same
// machine (the worker restarted) with the same attempt, so the worker can
// find what it started instead of starting it twice.
func (e *Engine) Next(ctx context.Context, id string, wait time.Duration) (*Assignment, error) {
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	hw, err := e.hardwareFor(ctx, id)
	if err != nil {
		return nil, err
	}
	e.workerSeen(hw)
	hk := hwKey(hw.Metadata.Namespace, hw.Metadata.Name)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		ch := make(chan struct{})
		e.mu.Lock()
		e.waiters[hk] = append(e.waiters[hk], ch)
		e.mu.Unlock()
		a, err := e.tryNext(ctx, hw)
		if err != nil || a != nil {
			e.unwait(hk, ch)
			return a, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			e.unwait(hk, ch)
			return nil, nil
		case <-ctx.Done():
			e.unwait(hk, ch)
			return nil, ctx.Err()
		}
	}
}

// unwait removes a wait that ended without a notify: a machine that asks
// without waiting (Tinkerbell's agent does, every few seconds) would
// otherwise leave one per ask until work comes.
func (e *Engine) unwait(hk string, ch chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.waiters[hk]
	if i := slices.Index(ws, ch); i >= 0 {
		ws = slices.Delete(ws, i, i+1)
	}
	if len(ws) == 0 {
		delete(e.waiters, hk)
		return
	}
	e.waiters[hk] = ws
}

func (e *Engine) tryNext(ctx context.Context, hw *schema.Hardware) (*Assignment, error) {
	for _, r := range e.runsFor(append([]string{hw.Metadata.Name}, hw.MACs()...)) {
		if r.State != state.RunRunning || r.CurrentAction >= len(r.Actions) || !worksFor(r.Namespace, r.Actions[r.CurrentAction].Worker, hw) {
			continue
		}
		if r.Actions[r.CurrentAction].State == state.RunRunning {
			// Handing out again what was handed out: the worker may have
			// reported it to another replica a moment ago.
			if err := e.refreshRun(ctx, r.Key()); err != nil {
				return nil, err
			}
		}
		var out *Assignment
		err := e.transition(ctx, r.Key(), workerActor(hw), func(r *state.WorkflowRun) (bool, error) {
			if r.State != state.RunRunning || r.CurrentAction >= len(r.Actions) {
				return false, nil
			}
			a := &r.Actions[r.CurrentAction]
			if !worksFor(r.Namespace, a.Worker, hw) {
				return false, nil
			}
			write := handOut(r, hw, e.now())
			out = &Assignment{Namespace: r.Namespace, Workflow: r.Workflow, Run: r.Number, Task: a.Task, Action: r.CurrentAction,
				Attempt: a.Attempt, Name: a.Name, Image: a.Image, Command: a.Command, Environment: a.Environment,
				Volumes: a.Volumes, Pid: a.Pid, Timeout: a.Timeout, Background: a.Background, Deadline: a.Deadline}
			return write, nil
		})
		if err != nil {
			return nil, err
		}
		if out != nil {
			return out, nil
		}
	}
	return nil, nil
}

// Report takes a worker's report on an action. A report repeated changes
// nothing; a report on an action that is not current, on an old attempt or
// on a run that ended is refused with ECONFLICT and the reason (a worker
// told its run was cancelled stops).
func (e *Engine) Report(ctx context.Context, id string, rep Report) (*state.WorkflowRun, error) {
	switch rep.State {
	case state.RunRunning, state.RunSuccess, state.RunFailed, state.RunTimeout:
	default:
		return nil, state.Errorf(state.EINVALID, "state must be RUNNING, SUCCESS, FAILED or TIMEOUT, not %q", rep.State)
	}
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	hw, err := e.hardwareFor(ctx, id)
	if err != nil {
		return nil, err
	}
	e.workerSeen(hw)
	if len(rep.Message) > maxMessage {
		rep.Message = rep.Message[len(rep.Message)-maxMessage:]
	}
	key := state.RunKey{Namespace: rep.Namespace, Workflow: rep.Workflow, Number: rep.Run}
	var ended state.RunState // how the attempt ended, if this report ends it
	run, err := e.transitionRun(ctx, key, workerActor(hw), func(r *state.WorkflowRun) (bool, error) {
		changed, how, err := applyReport(r, key, rep, hw, e.now())
		ended = how
		return changed, err
	})
	if err == nil && ended != "" {
		e.actionEnded(run, rep.Action, ended)
	}
	return run, err
}

// workerSeen tells the observer that hw's worker is alive.
func (e *Engine) workerSeen(hw *schema.Hardware) {
	if e.obs != nil {
		e.obs.WorkerSeen(hw.Metadata.Namespace, hw.Metadata.Name, e.now())
	}
}

// latestRun finds the newest run of a workflow.
func (e *Engine) latestRun(ctx context.Context, wf state.ObjectKey) (*state.WorkflowRun, error) {
	runs, err := state.AllRuns(ctx, e.store, state.RunQuery{Workflow: wf.Name, Namespace: wf.Namespace})
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, state.Errorf(state.ENOTFOUND, "%s has no run", wf)
	}
	latest := runs[0]
	for _, r := range runs {
		if r.Number > latest.Number {
			latest = r
		}
	}
	return latest, nil
}

// Retry starts a new attempt of a workflow's latest run, which must have
// ended FAILED, TIMEOUT or CANCELLED: from the action that did not succeed,
// or from the first with fromStart. The run goes back to PENDING and waits
// its turn on its machines like any other run (one run per machine: a run
// that started there meanwhile finishes first); when it starts again it
// keeps its rendering, and its machine is prepared again (the BMC boot
// actions of its bootOptions) when the run starts over (see startsOver).
func (e *Engine) Retry(ctx context.Context, actor state.Actor, wf state.ObjectKey, fromStart bool) (*state.WorkflowRun, error) {
	latest, err := e.latestRun(ctx, wf)
	if err != nil {
		return nil, err
	}
	key := latest.Key()
	err = e.transition(ctx, key, actor, func(r *state.WorkflowRun) (bool, error) {
		switch r.State {
		case state.RunFailed, state.RunTimeout, state.RunCancelled:
		default:
			return false, state.Errorf(state.ECONFLICT, "%s is %s; only a FAILED, TIMEOUT or CANCELLED run can be retried", key, r.State)
		}
		from := r.CurrentAction
		if fromStart || from >= len(r.Actions) {
			from = 0
		}
		for i := from; i < len(r.Actions); i++ {
			a := &r.Actions[i]
			a.State, a.Deadline, a.FinishedAt = state.RunPending, time.Time{}, time.Time{}
			if fromStart {
				a.Attempt = 0
			}
		}
		r.CurrentAction = from
		r.FinishedAt, r.Deadline = time.Time{}, time.Time{}
		r.State = state.RunPending
		if len(r.Actions) == 0 {
			// It never started (its template did not render): start over.
			r.Reason = fmt.Sprintf("retried by %s", actor)
			return true, nil
		}
		where := fmt.Sprintf("from action %s", r.Actions[from].Name)
		if fromStart {
			where = "from the start"
		}
		r.Reason = fmt.Sprintf("retried by %s %s; waits its turn", actor, where)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return e.store.GetRun(ctx, key)
}

// Cancel ends a workflow's active run. A worker that reports on it is told
// the run is cancelled and stops.
func (e *Engine) Cancel(ctx context.Context, actor state.Actor, wf state.ObjectKey) (*state.WorkflowRun, error) {
	latest, err := e.latestRun(ctx, wf)
	if err != nil {
		return nil, err
	}
	key := latest.Key()
	err = e.transition(ctx, key, actor, func(r *state.WorkflowRun) (bool, error) {
		return cancelRun(r, key, actor, e.now())
	})
	if err != nil {
		return nil, err
	}
	return e.store.GetRun(ctx, key)
}
