package workflow

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// startBatch is how many waiting runs a step renders, and then writes,
// at a time. Rendering a batch uses every core, and its writes, made
// together, share the store's disk syncs (group commit): one run after
// another, each waiting for a sync of its own, took 6.4 s to start 10,000
// runs and minutes for 100,000. It also bounds the renderings held at once.
const startBatch = 64

// startWaiting starts, for each machine without a run in progress, its
// oldest waiting run: one run per machine at a time, in creation order. A
// run holds its hardware and every other machine its tasks run on; a
// waiting run keeps its place in the queue of each of its machines, so a
// younger run cannot overtake it there.
//
// Which runs start is decided in one pass over the runs in creation order
// (pass B below), as if each run were rendered when the pass reaches it;
// the renderings are made ahead, a batch at a time, for the runs that an
// earlier pass (A) found free as far as their known machines tell, and
// the decisions are written a batch at a time. A run A did not find free
// but B does (a run ahead of it failed to render, or rendered onto fewer
// machines) keeps its place and starts on the next step.
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
	// Pass A: the waiting runs that may start, by their known machines.
	var cands []*state.WorkflowRun
	scratch := maps.Clone(busy)
	for _, r := range runs {
		if r.State != state.RunPending {
			continue
		}
		_, gated := held[r.Key()]
		if _, ok := heldBy(scratch, r); ok || gated {
			if ok {
				hold(scratch, r)
			}
			continue
		}
		cands = append(cands, r)
		hold(scratch, r)
	}
	// Pass B, in creation order, rendering ahead and writing behind.
	var now time.Time      // when the batch was rendered: its runs' start
	ci := 0                // the candidate pass B comes to next
	var plans []*startPlan // rendered ahead: plans[0] is cands[ci]'s
	var writes []func()
	flush := func() {
		inParallel(len(writes), len(writes), func(i int) { writes[i]() })
		writes = writes[:0]
	}
	for _, r := range runs {
		if r.State != state.RunPending {
			continue
		}
		if ctx.Err() != nil {
			return // stopping, or no longer the leader: nothing more starts
		}
		key := r.Key()
		if ci < len(cands) && cands[ci] == r {
			if len(plans) == 0 {
				batch := cands[ci:min(ci+startBatch, len(cands))]
				plans = make([]*startPlan, len(batch))
				inParallel(len(batch), runtime.GOMAXPROCS(0), func(i int) { plans[i] = e.planStart(ctx, batch[i]) })
				now = e.now()
			}
			p := plans[0]
			plans, ci = plans[1:], ci+1
			started := cloneRun(r)
			wait := ""
			if !p.resumes && p.fail == "" {
				// The machines the rendering names may be held by a run
				// ahead of this one.
				started.Hardware, started.Machines = p.wf.Spec.HardwareRef, p.machines
				if h, ok := heldBy(busy, started); ok {
					wait = waitReason(h)
				}
			}
			e.applyStart(started, p, wait, now)
			if !started.State.Terminal() {
				hold(busy, started)
			}
			writes = append(writes, func() {
				if err := e.transition(ctx, key, state.ActorReconciler, func(cur *state.WorkflowRun) (bool, error) {
					if cur.State != state.RunPending || (len(cur.Actions) > 0) != p.resumes {
						return false, nil // changed since: the next step decides again
					}
					e.applyStart(cur, p, wait, now)
					return true, nil
				}); err != nil {
					e.log.Error("start run", append(runAttrs(r), "err", err)...)
				}
			})
		} else {
			why, gated := held[key]
			reason := why
			switch h, ok := heldBy(busy, r); {
			case ok:
				reason = waitReason(h)
				hold(busy, r)
			case gated:
				// A run the rollout gate holds does not hold its
				// machines: another workflow for that machine need not
				// wait for the set.
			default:
				// Free now though not in pass A: it starts on the next
				// step, and keeps its place meanwhile.
				hold(busy, r)
				continue
			}
			// Say what the run waits for, once: status shows it.
			if r.Reason != reason {
				writes = append(writes, func() { e.noteWaiting(ctx, r, reason) })
			}
		}
		if len(writes) >= startBatch {
			flush()
		}
	}
	flush()
}

// startPlan is what starting a waiting run takes, read and rendered
// ahead of the pass that decides whether it starts (see startWaiting).
type startPlan struct {
	wf *schema.Workflow
	t  *schema.Template
	hw *schema.Hardware
	// resumes: the run was retried and keeps its rendering (see resume).
	resumes bool
	// doc is the template rendered for the run, and machines the
	// machines other than its hardware that its tasks run on.
	doc      *schema.TemplateDocument
	machines []string
	// fail, when set, is why the run fails instead: its workflow,
	// template or hardware could not be read, its template did not
	// render, or a task's worker is no known machine.
	fail string
}

// planStart reads a waiting run's inputs and renders its template.
func (e *Engine) planStart(ctx context.Context, r *state.WorkflowRun) *startPlan {
	wf, t, hw, err := e.inputs(ctx, r)
	if err != nil {
		return &startPlan{fail: err.Error()}
	}
	p := &startPlan{wf: wf, t: t, hw: hw, resumes: len(r.Actions) > 0}
	if p.resumes {
		return p
	}
	doc, errs := e.loader.Render(t, wf, hw, e.knownMAC(ctx))
	if len(errs) > 0 {
		msg := errs[0].Error()
		if len(errs) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
		p.fail = "template did not render: " + msg
		return p
	}
	if p.machines, err = e.machinesFor(ctx, doc, hw); err != nil {
		p.fail = err.Error()
		return p
	}
	p.doc = doc
	return p
}

// applyStart hands a waiting run r to PREPARING or RUNNING as planned
// (FAILED when the plan says why it cannot start), or, when wait says
// what it waits for, keeps it waiting with its machines named so that it
// renders again when it starts. A retried run resumes with its rendering.
func (e *Engine) applyStart(r *state.WorkflowRun, p *startPlan, wait string, now time.Time) {
	switch {
	case p.fail != "":
		finish(r, state.RunFailed, p.fail, now)
	case p.resumes:
		e.resume(r, p.wf, p.hw, now)
	default:
		r.Template, r.Hardware, r.Machines = p.wf.Spec.TemplateRef, p.wf.Spec.HardwareRef, p.machines
		if wait != "" {
			r.Reason = wait
			return
		}
		begin(r, p.doc, p.wf, p.t, p.hw, p.machines, e.prep != nil, now)
	}
}

// inParallel calls fn(i) for every i below n, from at most limit
// goroutines at once, and returns when every call has.
func inParallel(n, limit int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, limit) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
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
