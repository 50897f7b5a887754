// Package reconciler turns a repository into the fleet's state: it loads a
// snapshot with package schema, plans the difference against the store
// (Plan is pure, so `tink diff` shows exactly what a sync will do), and
// applies the plan in one atomic batch. A snapshot with any error applies
// nothing: the last good revision stays in effect and the status says why
// the new one failed.
//
// A commit that changes one file of a large fleet costs little: the loader
// parses and renders only what the change reaches (see schema.HashFS), the
// declared objects are encoded only when their content changed, the
// store's objects are kept in memory and brought up to date from the event
// log before each plan (mirror.go says why that is never stale), a plan
// looks only at the objects that changed on either side since the last
// one (incremental.go), and only the runs of the workflows a plan touches
// are read.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Reconciler syncs snapshots into a store. The zero value is not usable;
// build one with New.
type Reconciler struct {
	store  state.Store
	loader *schema.Loader
	log    *slog.Logger
	opts   Options
	now    func() time.Time
	// actual mirrors the store's objects (see mirror.go); desired keeps
	// the declared objects in their stored form. Both spare a sync the
	// work of objects that did not change.
	actual  mirror
	desired desiredCache
}

// Config configures a Reconciler.
type Config struct {
	Store  state.Store
	Loader *schema.Loader // nil: a new one
	Log    *slog.Logger   // nil: discard
	Plan   Options
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns a Reconciler; it does no I/O.
func New(cfg Config) *Reconciler {
	r := &Reconciler{store: cfg.Store, loader: cfg.Loader, log: cfg.Log, opts: cfg.Plan, now: cfg.Now}
	if r.loader == nil {
		r.loader = schema.NewLoader()
	}
	if r.loader.Selector == nil {
		r.loader.Selector = state.SetSelector
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Snapshot is one state of the repository to sync.
type Snapshot struct {
	// Revision names it: main@sha1:<hash>, or dir@sha256:<hash>.
	Revision string
	// FS holds the repository files (under the configured path).
	FS fs.FS
	// Commit describes the commit for events ("abc1234 by alice: fix MAC").
	Commit string
	// Author and Committer are the commit's people ("Name <email>"), read
	// from the commit object; every event the sync writes names them.
	// Empty for a directory.
	Author    string
	Committer string
}

// Outcome is what one sync did.
type Outcome struct {
	Revision string
	// Errors are the repository's errors; the revision was not applied.
	Errors schema.ErrorList
	// Plan is the plan applied. It lists no fields of the objects it
	// creates (PlanSnapshot's plan does), which nobody reads once applied.
	Plan *Plan
	// Applied is true when the plan was written.
	Applied bool
	// Changed is true when an applied sync changed something: objects,
	// runs, or the revision in effect (a sync of the revision already in
	// effect, with nothing to do, changes nothing).
	Changed  bool
	Duration time.Duration
	// LoadTime, PlanTime and ApplyTime are the parts of Duration spent
	// loading the snapshot (parse, decode, render, check), planning it
	// against the store and writing the plan: of the last attempt, when a
	// concurrent write made the sync plan again. They tell an operator
	// where a slow sync spends its time (the "revision applied" log line
	// carries them).
	LoadTime, PlanTime, ApplyTime time.Duration
}

// PlanSnapshot loads a snapshot and plans it against the store without
// writing anything (what `tink diff` shows).
func (r *Reconciler) PlanSnapshot(ctx context.Context, snap Snapshot) (*Plan, schema.ErrorList, error) {
	return r.planSnapshot(ctx, snap, r.opts)
}

// planSnapshot is PlanSnapshot with the options given.
func (r *Reconciler) planSnapshot(ctx context.Context, snap Snapshot, o Options) (*Plan, schema.ErrorList, error) {
	return r.planSnapshotTimed(ctx, snap, o, nil)
}

// planSnapshotTimed is planSnapshot, recording in loaded (unless nil) how
// long loading the snapshot took.
func (r *Reconciler) planSnapshotTimed(ctx context.Context, snap Snapshot, o Options, loaded *time.Duration) (*Plan, schema.ErrorList, error) {
	start := r.now()
	set, err := r.loader.Load(ctx, snap.FS)
	if loaded != nil {
		*loaded = r.now().Sub(start)
	}
	var list schema.ErrorList
	if errors.As(err, &list) {
		return nil, list, nil
	}
	if err != nil {
		return nil, nil, err
	}
	opts := o.forRepository(set.Config)
	_, hashed := snap.FS.(schema.HashFS)
	if hashed {
		// From the last plan's memo when it can (incremental.go).
		var plan *Plan
		var ok bool
		var planErr error
		err = r.actual.viewLocked(ctx, r.store, func(m *mirror) {
			plan, ok, planErr = r.planIncremental(ctx, m, set, snap.Revision, opts)
		})
		if err == nil {
			err = planErr
		}
		if err != nil {
			return nil, nil, err
		}
		if ok {
			return plan, nil, nil
		}
	}
	var desired declared
	if hashed {
		desired, err = r.desired.objects(set, snap.Revision)
	} else {
		// Without hashes every object is decoded anew (a pull request's
		// plan): nothing to reuse, and nothing to push out of the cache.
		desired.objects, err = desiredObjects(set, snap.Revision)
	}
	if err != nil {
		return nil, nil, err
	}
	// The plan is made under the mirror's lock, from its map of the
	// store's objects, rather than from a copy of them.
	var plan *Plan
	var setErrs schema.ErrorList
	var runErr error
	err = r.actual.viewLocked(ctx, r.store, func(m *mirror) {
		objects := m.objects
		need := needsRuns(desired.objects, objects, opts)
		if setErrs = checkSets(set, desired.objects, objects); len(setErrs) > 0 {
			return
		}
		var actual Actual
		if actual.Runs, actual.RunNumbers, runErr = readRuns(ctx, r.store, need); runErr != nil {
			return
		}
		scope := wholeSet
		var unclean []int
		if hashed {
			scope.unclean = &unclean
		}
		plan = makePlan(set, desired.objects, snap.Revision, objects, actual, opts, scope)
		switch {
		case !hashed:
			// A pull request's plan leaves the memo to the followed branch.
		case len(set.WorkflowSets) == 0 && plan.Count(OpDelete)+plan.Count(OpOrphaned) == 0:
			m.rememberLocked(newPlanMemo(desired, unclean))
		default:
			// The next plan could not use a memo (incremental.go): keep none.
			m.memo, m.touched = nil, nil
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if len(setErrs) > 0 {
		return nil, setErrs, nil
	}
	if runErr != nil {
		return nil, nil, runErr
	}
	return plan, nil, nil
}

// apply writes a batch of the reconciler's and keeps the mirror of the
// store's objects current with it.
func (r *Reconciler) apply(ctx context.Context, b *state.Batch) (*state.Result, error) {
	res, err := r.store.Apply(ctx, b)
	if err != nil {
		// Whatever failed, the next plan reads the store afresh.
		r.actual.invalidate()
		return nil, err
	}
	r.actual.applied(b, res)
	return res, nil
}

// Sync loads, plans and applies one snapshot. Repository errors are not an
// error of Sync: they are recorded in the sync status and an event, and
// returned in the Outcome. Sync returns an error when the store fails.
func (r *Reconciler) Sync(ctx context.Context, snap Snapshot) (*Outcome, error) {
	start := r.now()
	out := &Outcome{Revision: snap.Revision}
	prev, err := r.store.SyncStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("read sync status: %w", err)
	}
	commit := snap.Commit
	if commit == "" {
		commit = snap.Revision
	}
	// A concurrent API write can move an object between planning and
	// applying; the batch then fails with a conflict and the plan is made
	// again from the new state.
	for attempt := 1; ; attempt++ {
		// The plan's field lists of created objects are left out.
		o := r.opts
		o.syncing = true
		planStart := r.now()
		plan, errs, err := r.planSnapshotTimed(ctx, snap, o, &out.LoadTime)
		if err != nil {
			return nil, err
		}
		out.PlanTime, out.ApplyTime = r.now().Sub(planStart)-out.LoadTime, 0
		out.Plan = plan
		status := &state.SyncStatus{
			LastAttemptedRevision: snap.Revision,
			LastAppliedRevision:   prev.LastAppliedRevision,
			Suspended:             prev.Suspended,
			LastSyncAt:            start,
			LastDuration:          r.now().Sub(start),
		}
		if len(errs) > 0 {
			out.Errors = errs
			status.Errors = syncErrors(errs)
			status.Failure, status.Reason = state.FailureStalled, stalledInvalid(len(errs))
			b := &state.Batch{Actor: state.ActorReconciler, Revision: snap.Revision, Author: snap.Author, Committer: snap.Committer, Sync: status}
			b.Events = append(b.Events, state.Event{Type: state.EventError, Message: fmt.Sprintf(
				"%s not applied: %d error(s); %s stays in effect. First: %s", commit, len(errs), orNone(prev.LastAppliedRevision), errs[0].Error())})
			if _, err := r.apply(ctx, b); err != nil {
				return nil, fmt.Errorf("record failed sync: %w", err)
			}
			r.log.Warn("revision not applied", "revision", snap.Revision, "errors", len(errs), "first", errs[0].Error())
			out.Duration = r.now().Sub(start)
			return out, nil
		}
		if plan.Blocked != "" {
			status.Errors = []state.SyncError{{Message: plan.Blocked}}
			status.Failure, status.Reason = state.FailureStalled, plan.Blocked
			b := &state.Batch{Actor: state.ActorReconciler, Revision: snap.Revision, Author: snap.Author, Committer: snap.Committer, Sync: status}
			b.Events = append(b.Events, state.Event{Type: state.EventError, Message: fmt.Sprintf("%s not applied: %s", commit, plan.Blocked)})
			if _, err := r.apply(ctx, b); err != nil {
				return nil, fmt.Errorf("record blocked sync: %w", err)
			}
			out.Duration = r.now().Sub(start)
			return out, nil
		}
		status.LastAppliedRevision = snap.Revision
		b := plan.batch(commit)
		b.Sync = status
		b.Author, b.Committer = snap.Author, snap.Committer
		out.Changed = !plan.Empty() || prev.LastAppliedRevision != snap.Revision || len(prev.Errors) > 0
		if out.Changed {
			b.Events = append(b.Events, state.Event{Type: state.EventSync, Actor: state.ActorGit, Message: syncMessage(commit, plan)})
		}
		if b.Empty() {
			out.Applied = true
			out.Duration = r.now().Sub(start)
			return out, nil
		}
		applyStart := r.now()
		_, err = r.apply(ctx, b)
		out.ApplyTime = r.now().Sub(applyStart)
		if state.ErrorCode(err) == state.ECONFLICT && attempt < 5 {
			r.log.Info("store moved while syncing; planning again", "revision", snap.Revision, "err", state.ErrorMessage(err))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", snap.Revision, err)
		}
		out.Applied = true
		out.Duration = r.now().Sub(start)
		r.log.Info("revision applied", "revision", snap.Revision, "created", plan.Count(OpCreate), "updated", plan.Count(OpUpdate),
			"deleted", plan.Count(OpDelete), "runs", len(plan.runs), "duration", out.Duration,
			"load", out.LoadTime, "plan", out.PlanTime, "apply", out.ApplyTime)
		return out, nil
	}
}

// syncMessage summarises an applied plan for its event.
func syncMessage(commit string, p *Plan) string {
	s := fmt.Sprintf("applied %s: %d created, %d updated, %d deleted, %d unchanged",
		commit, p.Count(OpCreate), p.Count(OpUpdate), p.Count(OpDelete), p.Unchanged)
	if n := len(p.runs); n > 0 {
		s += fmt.Sprintf("; %s", plural(n, "run starts", "runs start"))
	}
	return s
}

func orNone(rev string) string {
	if rev == "" {
		return "nothing applied yet"
	}
	return rev
}

// syncErrors converts schema errors for the sync status.
func syncErrors(list schema.ErrorList) []state.SyncError {
	out := make([]state.SyncError, 0, len(list))
	for _, e := range list {
		out = append(out, state.SyncError{File: e.File, Line: e.Line, Column: e.Column, Path: e.Path, Message: e.Message})
	}
	return out
}

// FormatText renders a plan for people: consequences first, then each
// change with its fields.
func (p *Plan) FormatText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s: %d to create, %d to update, %d to delete, %d unchanged\n",
		p.Revision, p.Count(OpCreate), p.Count(OpUpdate), p.Count(OpDelete), p.Unchanged)
	if p.Blocked != "" {
		fmt.Fprintf(&b, "\nBLOCKED: %s\n", p.Blocked)
	}
	if cs := p.Consequences(); len(cs) > 0 {
		b.WriteString("\nWhat happens:\n")
		for _, c := range cs {
			fmt.Fprintf(&b, "  - %s\n", c)
		}
	}
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "\n%s %s (%s)\n", c.Op, c.Key, c.File)
		for _, f := range c.Fields {
			switch {
			case f.Old == "" && f.New == "":
				fmt.Fprintf(&b, "    %s\n", f.Path)
			case f.Old == "":
				fmt.Fprintf(&b, "  + %s: %s\n", f.Path, f.New)
			case f.New == "":
				fmt.Fprintf(&b, "  - %s: %s\n", f.Path, f.Old)
			default:
				fmt.Fprintf(&b, "  ~ %s: %s -> %s\n", f.Path, f.Old, f.New)
			}
		}
	}
	return b.String()
}
