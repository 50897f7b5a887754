package workflow

import (
	"context"
	"errors"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// finishTimeout bounds the after-run BMC actions of one run.
const finishTimeout = 2 * time.Minute

// prepare runs a PREPARING run's boot actions in a goroutine the engine
// owns (BMC calls take seconds; other runs go on meanwhile), then moves the
// run to RUNNING, or FAILED with the BMC's error.
func (e *Engine) prepare(ctx context.Context, key state.RunKey) {
	e.mu.Lock()
	if e.preparing[key] || e.prep == nil {
		e.mu.Unlock()
		return
	}
	e.preparing[key] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.preparing, key)
			e.mu.Unlock()
		}()
		run, err := e.store.GetRun(ctx, key)
		if err != nil {
			e.log.Error("prepare: read run", append(keyAttrs(key), "err", err)...)
			return
		}
		wf, _, hw, err := e.inputs(ctx, run)
		if err == nil {
			err = e.prep.Prepare(ctx, run, wf, hw)
		}
		if ctx.Err() != nil {
			return // shutting down: the next engine prepares again
		}
		_ = e.transition(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
			return prepared(r, err, e.now()), nil
		})
	}()
}

// bmcMessage is a boot action error as the run's reason shows it: a coded
// error's message (without its code), any other error's text; the
// Preparer keeps secrets out of both.
func bmcMessage(err error) string {
	var se *state.Error
	if errors.As(err, &se) {
		return se.Message
	}
	return err.Error()
}

func needsBoot(wf *schema.Workflow) bool {
	b := wf.Spec.BootOptions
	return b != nil && (b.BootMode != "" || b.ToggleAllowNetboot)
}

// finish runs the after-run boot actions of an ended run in a goroutine the
// engine owns; a failure is logged and an event (it does not change how
// the run ended). run is the run as it ended, when the caller has it (the
// engine's copy, not changed by anyone); nil reads it.
func (e *Engine) finish(key state.RunKey, run *state.WorkflowRun) {
	e.mu.Lock()
	base := e.runCtx
	e.mu.Unlock()
	e.finishIn(base, key, run)
}

// finishIn is finish with the context the boot actions run under (the
// leader's term on a replica, see replicas.go).
func (e *Engine) finishIn(base context.Context, key state.RunKey, run *state.WorkflowRun) {
	f, ok := e.prep.(Finisher)
	if !ok {
		return
	}
	if base == nil || base.Err() != nil {
		return // not running (or stopping): nothing owns the goroutine
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(base, finishTimeout)
		defer cancel()
		if run == nil {
			var err error
			if run, err = e.store.GetRun(ctx, key); err != nil {
				e.log.Error("after-run boot actions: read run", append(keyAttrs(key), "err", err)...)
				return
			}
		}
		run := cloneRun(run) // the Finisher's own
		// Most workflows have no boot actions: the workflow alone says so.
		if wf, err := e.workflowOf(ctx, run); err == nil && !needsBoot(wf) {
			return
		}
		wf, _, hw, err := e.inputs(ctx, run)
		if err != nil {
			e.log.Warn("after-run boot actions skipped", append(runAttrs(run), "err", err)...)
			return
		}
		if !needsBoot(wf) {
			return
		}
		if err := f.Finish(ctx, run, wf, hw); err != nil {
			e.log.Warn("after-run boot actions failed", append(runAttrs(run), "err", err)...)
		}
	}()
}
