package workflow

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// machineName is how a run names another machine it holds (Machines):
// "name", or "namespace/name".
func machineName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// machinesOf returns the keys (hwKey) of every machine a run holds: its
// hardware, and the machines its other tasks run on.
func machinesOf(r *state.WorkflowRun) []string {
	out := make([]string, 0, 1+len(r.Machines))
	out = append(out, hwKey(r.Namespace, r.Hardware))
	for _, m := range r.Machines {
		ns, name, ok := strings.Cut(m, "/")
		if !ok {
			ns, name = "", m
		}
		out = append(out, hwKey(ns, name))
	}
	return out
}

// holder is the run that holds a machine, and that machine's name.
type holder struct {
	run     *state.WorkflowRun
	machine string
}

// heldBy returns who holds one of r's machines other than r itself, if
// anyone does.
func heldBy(busy map[string]holder, r *state.WorkflowRun) (holder, bool) {
	for _, hk := range machinesOf(r) {
		if h, ok := busy[hk]; ok && h.run.Key() != r.Key() {
			return h, true
		}
	}
	return holder{}, false
}

// hold marks every machine of r as held by r.
func hold(busy map[string]holder, r *state.WorkflowRun) {
	for _, hk := range machinesOf(r) {
		_, name, _ := strings.Cut(hk, "/")
		busy[hk] = holder{run: r, machine: name}
	}
}

// waitReason says what a waiting run waits for.
func waitReason(h holder) string {
	return fmt.Sprintf("waits for %s#%d, %s on %s", h.run.Workflow, h.run.Number, h.run.State, h.machine)
}

// startWaiting starts, for each machine without a run in progress, its
// oldest waiting run: one run per machine at a time, in creation order. A
// run holds its hardware and every other machine its tasks run on; a
// waiting run keeps its place in the queue of each of its machines, so a
// younger run cannot overtake it there.
func (e *Engine) startWaiting(ctx context.Context) {
	runs := e.active()
	var held map[state.RunKey]string
	if e.gate != nil {
		held = e.gate.Hold(ctx, runs)
	}
	if !slices.ContainsFunc(runs, func(r *state.WorkflowRun) bool { return r.State == state.RunPending }) {
		return // nothing waits: who holds which machine does not matter
	}
	busy := map[string]holder{}
	for _, r := range runs {
		if r.State == state.RunPreparing || r.State == state.RunRunning {
			hold(busy, r)
		}
	}
	for _, r := range runs {
		if r.State != state.RunPending {
			continue
		}
		why, gated := held[r.Key()]
		if h, ok := heldBy(busy, r); ok || gated {
			// Say what the run waits for, once: status shows it. A run the
			// rollout gate holds does not hold its machines: another
			// workflow for that machine need not wait for the set.
			reason := why
			if ok {
				reason = waitReason(h)
				hold(busy, r)
			}
			e.noteWaiting(ctx, r, reason)
			continue
		}
		if err := e.start(ctx, r.Key(), busy); err != nil {
			e.log.Error("start run", append(runAttrs(r), "err", err)...)
		}
		e.mu.Lock()
		started := e.runs[r.Key()]
		e.mu.Unlock()
		if started == nil {
			continue // it ended at once (its template did not render)
		}
		hold(busy, started)
	}
}

// noteWaiting records what a waiting run waits for, once: status shows it.
func (e *Engine) noteWaiting(ctx context.Context, r *state.WorkflowRun, reason string) {
	if r.Reason == reason {
		return
	}
	if err := e.transition(ctx, r.Key(), state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
		if r.State != state.RunPending || r.Reason == reason {
			return false, nil
		}
		r.Reason = reason
		return true, nil
	}); err != nil {
		e.log.Error("note waiting run", append(runAttrs(r), "err", err)...)
	}
}

// start hands a waiting run to PREPARING or RUNNING. A new run renders its
// template (a template that does not render fails the run, with why) and
// finds the machines its tasks run on; if one of them is held by another
// run, it keeps waiting. A retried run keeps its rendering (see resume).
func (e *Engine) start(ctx context.Context, key state.RunKey, busy map[string]holder) error {
	return e.transition(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
		if r.State != state.RunPending {
			return false, nil
		}
		wf, t, hw, err := e.inputs(ctx, r)
		now := e.now()
		if err != nil {
			finish(r, state.RunFailed, err.Error(), now)
			return true, nil
		}
		if len(r.Actions) > 0 {
			e.resume(r, wf, hw, now)
			return true, nil
		}
		doc, errs := e.loader.Render(t, wf, hw, e.knownMAC(ctx))
		if len(errs) > 0 {
			msg := errs[0].Error()
			if len(errs) > 1 {
				msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
			}
			finish(r, state.RunFailed, "template did not render: "+msg, now)
			return true, nil
		}
		machines, err := e.machinesFor(ctx, doc, hw)
		if err != nil {
			finish(r, state.RunFailed, err.Error(), now)
			return true, nil
		}
		r.Template, r.Hardware, r.Machines = wf.Spec.TemplateRef, wf.Spec.HardwareRef, machines
		if h, ok := heldBy(busy, r); ok {
			// Another machine of the template is busy: wait for it, and
			// render again when the run starts.
			r.Reason = waitReason(h)
			return true, nil
		}
		begin(r, doc, wf, t, hw, machines, e.prep != nil, now)
		return true, nil
	})
}

// resume starts a retried run again with the rendering it has, from its
// current action. Its machine is prepared again (PREPARING: the boot
// actions of its bootOptions) when the run starts over, from the start or
// before any action was handed out (its boot actions failed, or it ended
// before its worker asked for work): the machine must boot what the
// run's first action expects. A run retried from a later action resumes
// on the machine as it is.
func (e *Engine) resume(r *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware, now time.Time) {
	r.Deadline = time.Time{}
	if r.GlobalTimeout > 0 {
		r.Deadline = now.Add(time.Duration(r.GlobalTimeout) * time.Second)
	}
	if b := wf.Spec.BootOptions; b != nil && b.ToggleAllowNetboot {
		r.AllowPXE = new(true)
	}
	from := r.Actions[r.CurrentAction].Name
	r.State, r.Reason = state.RunRunning, fmt.Sprintf("retry: resumed from action %s", from)
	if !needsBoot(wf) || e.prep == nil {
		return
	}
	if startsOver(r) {
		r.State, r.Reason = state.RunPreparing, fmt.Sprintf("retry: preparing %s again: BMC boot actions (the run starts over)", hw.Metadata.Name)
		return
	}
	r.Reason += fmt.Sprintf("; %s is not prepared again (the run was past its boot actions)", hw.Metadata.Name)
}

// startsOver reports whether a run resumes before any of its actions was
// handed out: retried from the start (attempts are counted afresh), or
// after it failed before its first action.
func startsOver(r *state.WorkflowRun) bool {
	for _, a := range r.Actions {
		if a.Attempt > 0 {
			return false
		}
	}
	return true
}

// machinesFor names the machines other than hw that a rendered template's
// tasks run on (a task's worker is a MAC or a hardware name).
func (e *Engine) machinesFor(ctx context.Context, doc *schema.TemplateDocument, hw *schema.Hardware) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range doc.Tasks {
		if seen[t.Worker] || worksFor(hw.Metadata.Namespace, t.Worker, hw) {
			continue
		}
		seen[t.Worker] = true
		other, err := e.hardwareFor(ctx, t.Worker)
		if err != nil {
			return nil, fmt.Errorf("task %s: worker %s: %s", t.Name, t.Worker, state.ErrorMessage(err))
		}
		if n := machineName(other.Metadata.Namespace, other.Metadata.Name); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// flatten lists a rendered document's actions in execution order, with
// the task's environment under the action's and the task's volumes before
// the action's, as Tinkerbell runs them. Where only one of the two has any,
// the action takes the rendered map or list itself rather than a copy: a
// run's actions are only ever read, and the rendering is theirs alone (at
// 10,000 waiting runs the copies were 7.5 MB).
func flatten(doc *schema.TemplateDocument) []state.RunAction {
	var out []state.RunAction
	for _, t := range doc.Tasks {
		for _, a := range t.Actions {
			var env map[string]string
			switch {
			case len(t.Environment) == 0 && len(a.Environment) > 0:
				env = a.Environment
			case len(a.Environment) == 0 && len(t.Environment) > 0:
				env = t.Environment
			case len(a.Environment) > 0:
				env = make(map[string]string, len(t.Environment)+len(a.Environment))
				maps.Copy(env, t.Environment)
				maps.Copy(env, a.Environment)
			}
			var volumes []string
			switch {
			case len(t.Volumes) > 0 && len(a.Volumes) > 0:
				volumes = append(slices.Clone(t.Volumes), a.Volumes...)
			case len(t.Volumes) > 0:
				volumes = slices.Clip(t.Volumes)
			case len(a.Volumes) > 0:
				volumes = slices.Clip(a.Volumes)
			}
			pid := a.Pid
			if a.Namespaces != nil && a.Namespaces.PID != "" {
				pid = a.Namespaces.PID
			}
			out = append(out, state.RunAction{
				Task: t.Name, Name: a.Name, Image: a.Image, Timeout: a.Timeout, Command: a.Command,
				Environment: env, Volumes: volumes, Pid: pid,
				Retries: a.Retries, Background: a.Background, Worker: t.Worker, State: state.RunPending,
			})
		}
	}
	return out
}
