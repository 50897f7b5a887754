package workflow

import (
	"fmt"
	"strings"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// The rules by which a run changes state, kept apart from the store, the
// clock and the locks so they can be read (and tested) in one place. Each
// takes the engine's private copy of the run (transitionOnce clones it),
// changes it in place and says whether there is anything to write; the
// engine reads the time, takes the run's lock and writes the result.

// finish ends a run.
func finish(r *state.WorkflowRun, s state.RunState, reason string, now time.Time) {
	r.State, r.Reason, r.FinishedAt = s, reason, now
}

// endAttempt ends the current action's attempt as FAILED or TIMEOUT: the
// action is tried again while it has retries left, else the run ends.
func endAttempt(r *state.WorkflowRun, s state.RunState, msg string, now time.Time) {
	a := &r.Actions[r.CurrentAction]
	a.FinishedAt, a.Message = now, msg
	if a.Attempt <= a.Retries {
		a.State, a.Deadline = state.RunPending, time.Time{}
		r.Reason = fmt.Sprintf("action %s attempt %d %s; retrying (%d of %d retries left)", a.Name, a.Attempt, strings.ToLower(string(s)), a.Retries-a.Attempt+1, a.Retries)
		return
	}
	a.State = s
	finish(r, s, fmt.Sprintf("action %s %s after %d attempt(s): %s", a.Name, strings.ToLower(string(s)), a.Attempt, msg), now)
}

// begin moves a PENDING run whose template rendered to doc into RUNNING
// (PREPARING when boot is set and the workflow asks for boot actions), or
// SUCCESS when the template has no actions.
func begin(r *state.WorkflowRun, doc *schema.TemplateDocument, wf *schema.Workflow, t *schema.Template, hw *schema.Hardware, machines []string, boot bool, now time.Time) {
	r.Actions = flatten(doc)
	r.CurrentAction = 0
	r.GlobalTimeout = doc.GlobalTimeout
	r.StartedAt = now
	if doc.GlobalTimeout > 0 {
		r.Deadline = now.Add(time.Duration(doc.GlobalTimeout) * time.Second)
	}
	if b := wf.Spec.BootOptions; b != nil && b.ToggleAllowNetboot {
		r.AllowPXE = new(true)
	}
	r.State, r.Reason = state.RunRunning, fmt.Sprintf("started: template %s rendered for %s, %d actions", t.Metadata.Name, hw.Metadata.Name, len(r.Actions))
	if len(machines) > 0 {
		r.Reason += fmt.Sprintf(", tasks also on %s", strings.Join(machines, ", "))
	}
	if len(r.Actions) == 0 {
		finish(r, state.RunSuccess, "the template has no actions", now)
	}
	if boot && needsBoot(wf) && r.State == state.RunRunning {
		r.State, r.Reason = state.RunPreparing, "preparing: BMC boot actions"
	}
}

// prepared moves a PREPARING run to RUNNING once its boot actions are
// done, or to FAILED with the BMC's error.
func prepared(r *state.WorkflowRun, err error, now time.Time) bool {
	if r.State != state.RunPreparing {
		return false
	}
	if err != nil {
		finish(r, state.RunFailed, "boot actions failed: "+bmcMessage(err), now)
		return true
	}
	r.State, r.Reason = state.RunRunning, "boot actions done"
	return true
}

// handOut starts the next attempt of a RUNNING run's current action when
// it is PENDING, for the worker of hw. It reports whether it changed the
// run; a current action already handed out is handed out again unchanged.
func handOut(r *state.WorkflowRun, hw *schema.Hardware, now time.Time) bool {
	a := &r.Actions[r.CurrentAction]
	if a.State != state.RunPending {
		return false
	}
	a.State, a.Attempt, a.StartedAt, a.FinishedAt, a.Message = state.RunRunning, a.Attempt+1, now, time.Time{}, ""
	a.Deadline = time.Time{}
	if a.Timeout > 0 {
		a.Deadline = now.Add(time.Duration(a.Timeout) * time.Second)
	}
	r.Reason = fmt.Sprintf("action %s handed to %s (attempt %d)", a.Name, hw.Metadata.Name, a.Attempt)
	return true
}

// applyReport applies a worker's report on action rep.Action of run key
// (the worker is hw's). A report repeated changes nothing; a report on an
// action that is not current, on an old attempt or on a run that ended is
// refused with ECONFLICT. ended is how the attempt ended when this report
// ends it.
func applyReport(r *state.WorkflowRun, key state.RunKey, rep Report, hw *schema.Hardware, now time.Time) (changed bool, ended state.RunState, err error) {
	if rep.Action < 0 || rep.Action >= len(r.Actions) {
		return false, "", state.Errorf(state.EINVALID, "%s has no action %d", key, rep.Action)
	}
	a := &r.Actions[rep.Action]
	if !worksFor(r.Namespace, a.Worker, hw) {
		return false, "", state.Errorf(state.ECONFLICT, "%s: action %s belongs to worker %s, not %s", key, a.Name, a.Worker, hardwareID(hw))
	}
	// The same report again changes nothing.
	duplicate := a.State == rep.State && !(a.Background && rep.State == state.RunRunning) ||
		a.Background && rep.State == state.RunRunning && a.State == state.RunSuccess
	if a.Attempt == rep.Attempt && duplicate {
		return false, "", nil
	}
	switch {
	case r.State.Terminal():
		return false, "", state.Errorf(state.ECONFLICT, "%s is %s (%s); stop", key, r.State, r.Reason)
	case rep.Action != r.CurrentAction:
		return false, "", state.Errorf(state.ECONFLICT, "%s: action %d is not current (current: %d)", key, rep.Action, r.CurrentAction)
	case rep.Attempt != a.Attempt:
		return false, "", state.Errorf(state.ECONFLICT, "%s: attempt %d of action %s is over (current attempt: %d)", key, rep.Attempt, a.Name, a.Attempt)
	case a.State != state.RunRunning:
		return false, "", state.Errorf(state.ECONFLICT, "%s: action %s is %s, not running", key, a.Name, a.State)
	}
	a.Message = rep.Message
	switch {
	case rep.State == state.RunRunning && !a.Background:
		if !rep.Started.IsZero() {
			a.StartedAt = rep.Started
		}
		r.Reason = fmt.Sprintf("action %s running on %s", a.Name, hw.Metadata.Name)
	case rep.State == state.RunSuccess || rep.State == state.RunRunning:
		a.State, a.FinishedAt = state.RunSuccess, now
		ended = state.RunSuccess
		if !rep.Finished.IsZero() {
			a.FinishedAt = rep.Finished
		}
		r.CurrentAction++
		r.Reason = fmt.Sprintf("action %s succeeded", a.Name)
		if a.Background {
			r.Reason = fmt.Sprintf("action %s started in the background; counted as done", a.Name)
		}
		if r.CurrentAction == len(r.Actions) {
			finish(r, state.RunSuccess, "every action succeeded", now)
		}
	default:
		endAttempt(r, rep.State, rep.Message, now)
		ended = rep.State
	}
	return true, ended, nil
}

// timeoutRun ends a RUNNING run past its global deadline as TIMEOUT, with
// its running action. ended is the index of that action, or -1.
func timeoutRun(r *state.WorkflowRun, now time.Time) (changed bool, ended int) {
	ended = -1
	if r.State != state.RunRunning || r.Deadline.IsZero() || !now.After(r.Deadline) {
		return false, ended
	}
	if i := r.CurrentAction; i < len(r.Actions) && r.Actions[i].State == state.RunRunning {
		a := &r.Actions[i]
		a.State, a.FinishedAt, a.Message = state.RunTimeout, now, "the run's global timeout passed"
		ended = i
	}
	finish(r, state.RunTimeout, fmt.Sprintf("global timeout of %ds passed", r.GlobalTimeout), now)
	return true, ended
}

// timeoutAttempt ends attempt of action idx as TIMEOUT if it is still the
// running attempt of the current action; the action is retried while it
// has retries left.
func timeoutAttempt(r *state.WorkflowRun, idx, attempt int, now time.Time) bool {
	if r.State != state.RunRunning || r.CurrentAction != idx || r.Actions[idx].Attempt != attempt || r.Actions[idx].State != state.RunRunning {
		return false
	}
	endAttempt(r, state.RunTimeout, fmt.Sprintf("no report within the action's timeout of %ds", r.Actions[idx].Timeout), now)
	return true
}

// cancelRun ends run key as CANCELLED by actor, with its running action;
// ECONFLICT when it already ended.
func cancelRun(r *state.WorkflowRun, key state.RunKey, actor state.Actor, now time.Time) (bool, error) {
	if r.State.Terminal() {
		return false, state.Errorf(state.ECONFLICT, "%s already ended %s", key, r.State)
	}
	if i := r.CurrentAction; i < len(r.Actions) && r.Actions[i].State == state.RunRunning {
		r.Actions[i].State, r.Actions[i].FinishedAt, r.Actions[i].Message = state.RunCancelled, now, "cancelled by "+string(actor)
	}
	finish(r, state.RunCancelled, "cancelled by "+string(actor), now)
	return true, nil
}
