package workflow

import (
	"context"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Several replicas on one store.
//
// Every replica's engine serves workers: it hands out actions and takes
// reports. Its copy of the active runs can be behind the store when another
// replica wrote a run, so:
//
//   - every write is conditional on the run's resourceVersion; a write that
//     loses (ECONFLICT) re-reads the run and decides again (transitionRun),
//     so an action is handed out once whichever replicas the requests
//     reach;
//   - handing out again an action already RUNNING (a worker that restarted)
//     reads the run from the store first, since the worker may have
//     reported it to another replica a moment ago;
//   - followRuns reads the run-state and action-state events other
//     replicas write and refreshes the copy, which also wakes a worker's
//     long poll on this replica as soon as a report accepted by another one
//     makes its next action current.
//
// Only the leader (Config.Leader) starts runs, enforces timeouts and does
// boot actions before and after runs, with the leader term's context: the
// writes carry its fence and the BMC calls end with the term.

// conflictRetries bounds how often a transition re-reads a run that another
// writer moved on and decides again.
const conflictRetries = 3

// transitionRun is transition returning the run as it now is. A conflict
// (the stored run moved on, or the cached copy was behind) re-reads the run
// and runs change again on what is stored.
func (e *Engine) transitionRun(ctx context.Context, key state.RunKey, actor state.Actor, change func(r *state.WorkflowRun) (bool, error)) (*state.WorkflowRun, error) {
	for attempt := 1; ; attempt++ {
		run, err := e.transitionOnce(ctx, key, actor, change)
		if err == nil || attempt == conflictRetries || state.ErrorCode(err) != state.ECONFLICT {
			return run, err
		}
		if _, fenced := state.FenceFrom(ctx); fenced && !e.isLeader() {
			return run, err // deposed: nothing to decide again
		}
		if rerr := e.refreshRun(ctx, key); rerr != nil {
			return run, err
		}
	}
}

// refreshRun replaces the cached copy of a run with the stored one and
// wakes the workers of its machine.
func (e *Engine) refreshRun(ctx context.Context, key state.RunKey) error {
	run, err := e.store.GetRun(ctx, key)
	if state.ErrorCode(err) == state.ENOTFOUND {
		e.mu.Lock()
		e.setRunLocked(key, nil)
		e.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	if run.State.Terminal() {
		e.setRunLocked(key, nil)
	} else {
		e.setRunLocked(key, run)
	}
	e.mu.Unlock()
	e.notify(hwKey(run.Namespace, run.Hardware))
	return nil
}

// followRuns keeps the cached runs in step with writes of other replicas,
// from the event log: an event newer than the cached copy re-reads the run.
// A run another replica ended gets its after-run boot actions from the
// leader.
//
// A watch from "now" would miss what was written between the last load
// of the runs and the watch's start (the load in Run, or one while a
// watch was being started again): a run another replica started in that
// gap stayed PENDING in this replica's copy, and its worker got nothing
// here. So while the copy is loaded, the watch starts just after the
// event the load had seen; events the copy already holds are skipped
// below by their versions.
func (e *Engine) followRuns(ctx context.Context) {
	filter := state.EventFilter{Kind: state.KindWorkflow, Types: []state.EventType{state.EventRunState, state.EventActionState}}
	for ctx.Err() == nil {
		e.mu.Lock()
		from := uint64(0)
		if e.loaded {
			from = e.loadedAt + 1
		}
		e.mu.Unlock()
		w, err := e.store.Watch(ctx, from, filter)
		if state.ErrorCode(err) == state.ENOTFOUND {
			// Retention removed events since the load: read the runs
			// again, after a watch from now.
			e.mu.Lock()
			e.loaded = false
			e.mu.Unlock()
			w, err = e.store.Watch(ctx, 0, filter)
		}
		if err != nil {
			e.log.Warn("follow runs", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.Events() {
			key := state.RunKey{Namespace: ev.Namespace, Workflow: ev.Name, Number: ev.Run}
			if e.ownEvent(key, ev) {
				continue
			}
			e.mu.Lock()
			cur, cached := e.runs[key]
			e.mu.Unlock()
			if cached && cur.ResourceVersion >= ev.ResourceVersion {
				continue // our own write, or older than what we have
			}
			if !cached && !(ev.Type == state.EventRunState && (ev.State == state.RunRunning || ev.State.Terminal())) {
				continue // not ours to serve yet; refreshPending finds new runs
			}
			if err := e.refreshRun(ctx, key); err != nil {
				e.log.Warn("follow runs: read run", append(keyAttrs(key), "err", err)...)
				continue
			}
			if ev.Type == state.EventRunState && ev.State.Terminal() && cached && !cur.State.Terminal() {
				e.finishIfLeader(key, nil)
			}
		}
		w.Close()
		if ctx.Err() == nil {
			// The watch ended (fell behind, store closing): anything
			// may have changed meanwhile.
			e.mu.Lock()
			e.loaded = false
			clear(e.ended)
			e.mu.Unlock()
			sleepCtx(ctx, time.Second)
		}
	}
}

// ownEvent reports whether ev is of a write of this engine's that the
// engine records itself, so followRuns need not read the run again. The
// event of a write can reach followRuns before the write's caller has
// recorded it (the store publishes events before it answers): an event of
// a run being written is left to that write, which reads the run again if
// the event turns out not to be its own (transitionOnce).
func (e *Engine) ownEvent(key state.RunKey, ev state.Event) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if seen, ok := e.writing[key]; ok {
		e.writing[key] = max(seen, ev.ResourceVersion)
		return true
	}
	rv, ok := e.ended[key]
	if !ok || ev.ResourceVersion > rv {
		delete(e.ended, key) // the run was written since: not ours
		return false
	}
	if ev.Type == state.EventRunState && ev.ResourceVersion == rv {
		delete(e.ended, key) // the last event that could be of it
	}
	return true
}

// refreshRunAfter reads a run again after a write of this engine's found
// that another wrote it too; a failure is logged (the next conflict reads
// it again).
func (e *Engine) refreshRunAfter(ctx context.Context, key state.RunKey) {
	if err := e.refreshRun(context.WithoutCancel(ctx), key); err != nil {
		e.log.Warn("read run written by another", append(keyAttrs(key), "err", err)...)
	}
}

// isLeader reports whether this engine leads.
func (e *Engine) isLeader() bool {
	if e.leader == nil {
		return true
	}
	_, ok := e.leader()
	return ok
}

// leaderStep runs Step with the leader term's context when this engine
// leads, and not at all otherwise.
func (e *Engine) leaderStep(ctx context.Context) {
	if e.leader == nil {
		e.Step(ctx)
		return
	}
	term, ok := e.leader()
	if !ok {
		return
	}
	e.mu.Lock()
	if e.term != term {
		// A new term: read every active run from the store again, so
		// the timers are armed from the stored deadlines whatever this
		// replica's copy missed while it followed.
		e.term, e.loaded = term, false
	}
	e.mu.Unlock()
	e.Step(term)
}

// finishIfLeader does a run's after-run boot actions on the leader, in its
// term: they stop if it steps down. run is as finish takes it.
func (e *Engine) finishIfLeader(key state.RunKey, run *state.WorkflowRun) {
	if e.leader == nil {
		e.finish(key, run)
		return
	}
	if term, ok := e.leader(); ok {
		e.finishIn(term, key, run)
	}
}
