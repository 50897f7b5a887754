package state

import (
	"fmt"
	"time"
)

// Batch is a set of changes that Store.Apply writes atomically: all of them
// with their events, or none. A Git revision is applied as one batch, so
// nobody ever sees half of it.
//
// The store appends one event per change (see ObjectEvent and RunEvents), in
// this order: Objects, Runs, then Events. The caller must not modify the
// batch until Apply returns.
type Batch struct {
	// Actor is who makes the changes; it is recorded on every event.
	Actor Actor
	// Revision is the Git revision being applied, if any; it is recorded on
	// every event that does not carry its own.
	Revision string
	// Author and Committer are the people of the commit at Revision
	// ("Name <email>"), when the batch applies a Git revision; the store
	// records them on every event of the batch (see Attribute).
	Author    string
	Committer string

	Objects []ObjectOp
	// Runs are written with the same optimistic concurrency as objects.
	Runs []*WorkflowRun
	// Events are extra events (bmc, sync, error, ...). The store assigns
	// Seq; it fills Time, Actor and Revision when they are empty.
	Events []Event
	// Sync, when set, replaces the sync status.
	Sync *SyncStatus
}

// ObjectOp is one object change of a Batch.
type ObjectOp struct {
	// Object is the object to put. For a deletion only its key and
	// ResourceVersion matter; ResourceVersion 0 then deletes whatever
	// version is there.
	Object *Object
	// Delete selects deletion instead of a put.
	Delete bool
	// Message explains the change in its event; empty gets a default.
	Message string
}

// Put adds an object put to the batch.
func (b *Batch) Put(obj *Object, message string) {
	b.Objects = append(b.Objects, ObjectOp{Object: obj, Message: message})
}

// Delete adds an object deletion to the batch; resourceVersion 0 deletes any
// version.
func (b *Batch) Delete(key ObjectKey, resourceVersion uint64, message string) {
	b.Objects = append(b.Objects, ObjectOp{
		Object:  &Object{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name, ResourceVersion: resourceVersion},
		Delete:  true,
		Message: message,
	})
}

// Attribute fills an event of the batch with the batch's actor, revision,
// author and committer where the event has none of its own. Stores call it
// for every event they append for a batch, so that every event a Git
// revision causes names the commit's people.
func (b *Batch) Attribute(ev *Event) {
	if ev.Actor == "" {
		ev.Actor = b.Actor
	}
	if ev.Revision == "" {
		ev.Revision = b.Revision
	}
	if ev.Author == "" && ev.Committer == "" {
		ev.Author, ev.Committer = b.Author, b.Committer
	}
}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Objects) == 0 && len(b.Runs) == 0 && len(b.Events) == 0 && b.Sync == nil
}

// Validate reports an EINVALID error naming the first change that cannot be
// applied. A batch that names the same object or run twice is invalid: the
// outcome would depend on the order of the changes, which is easy to get
// wrong and never needed.
func (b *Batch) Validate() error {
	if b == nil || b.Empty() {
		return Errorf(EINVALID, "empty batch")
	}
	objects := make(map[ObjectKey]struct{}, len(b.Objects))
	for i, op := range b.Objects {
		if op.Object == nil {
			return Errorf(EINVALID, "batch object %d is nil", i)
		}
		key := op.Object.Key()
		if op.Delete {
			if err := key.Validate(); err != nil {
				return err
			}
		} else if err := op.Object.Validate(); err != nil {
			return err
		}
		if _, dup := objects[key]; dup {
			return Errorf(EINVALID, "%s: appears twice in one batch", key)
		}
		objects[key] = struct{}{}
	}
	runs := make(map[RunKey]struct{}, len(b.Runs))
	for i, r := range b.Runs {
		if r == nil {
			return Errorf(EINVALID, "batch run %d is nil", i)
		}
		if err := r.Validate(); err != nil {
			return err
		}
		if _, dup := runs[r.Key()]; dup {
			return Errorf(EINVALID, "%s: appears twice in one batch", r.Key())
		}
		runs[r.Key()] = struct{}{}
	}
	for i, ev := range b.Events {
		if ev.Type == "" {
			return Errorf(EINVALID, "batch event %d has no type", i)
		}
		if ev.Seq != 0 {
			return Errorf(EINVALID, "batch event %d has a sequence number; the store assigns it", i)
		}
	}
	return nil
}

// Result is what Store.Apply wrote. Its objects and runs may share maps and
// slices with the batch that was applied.
type Result struct {
	// Objects holds, per Batch.Objects entry, the object as written (with
	// its new ResourceVersion and times) or, for a deletion, as it was.
	Objects []*Object
	// Runs holds the runs as written, per Batch.Runs entry.
	Runs []*WorkflowRun
	// Events holds every event appended, in sequence order.
	Events []Event
}

// ObjectEvent returns the event a store appends for an object change: old is
// the object before (nil when created), obj after (for a deletion, the object
// as it was). Stores share it so that the log reads the same whatever the
// backend.
func ObjectEvent(op ObjectOp, old, obj *Object, actor Actor, revision string, now time.Time) Event {
	ev := Event{
		Time:            now,
		Kind:            obj.Kind,
		Namespace:       obj.Namespace,
		Name:            obj.Name,
		ResourceVersion: obj.ResourceVersion,
		Message:         op.Message,
		Revision:        revision,
		Actor:           actor,
	}
	if !op.Delete && obj.Revision != "" {
		ev.Revision = obj.Revision
	}
	switch {
	case op.Delete:
		ev.Type = EventDeleted
	case old == nil:
		ev.Type = EventCreated
	default:
		ev.Type = EventUpdated
	}
	if ev.Message == "" {
		ev.Message = fmt.Sprintf("%s %s", obj.Key(), ev.Type)
		if !op.Delete && obj.File != "" {
			ev.Message += " from " + obj.File
		}
	}
	return ev
}

// RunEvents returns the events a store appends for a run change: a run-state
// event when the run is created or its state changes, and an action-state
// event for every action whose state or attempt changed (an action of a new
// run counts as having been PENDING at attempt 0, so creating a run does not
// log one event per pending action).
func RunEvents(old, run *WorkflowRun, actor Actor, revision string, now time.Time) []Event {
	base := Event{
		Time:            now,
		Kind:            KindWorkflow,
		Namespace:       run.Namespace,
		Name:            run.Workflow,
		Run:             run.Number,
		ResourceVersion: run.ResourceVersion,
		Revision:        revision,
		Actor:           actor,
	}
	if base.Revision == "" {
		base.Revision = run.Revision
	}
	var evs []Event
	if old == nil || old.State != run.State {
		ev := base
		ev.Type = EventRunState
		ev.State = run.State
		if old == nil {
			ev.Message = fmt.Sprintf("%s: %s", run.Key(), run.State)
		} else {
			ev.Message = fmt.Sprintf("%s: %s -> %s", run.Key(), old.State, run.State)
		}
		if run.Reason != "" {
			ev.Message += ": " + run.Reason
		}
		evs = append(evs, ev)
	}
	for i, a := range run.Actions {
		before := RunAction{State: RunPending}
		if old != nil && i < len(old.Actions) && old.Actions[i].Name == a.Name {
			before = old.Actions[i]
		}
		if before.State == a.State && before.Attempt == a.Attempt {
			continue
		}
		ev := base
		ev.Type = EventActionState
		ev.Action = a.Name
		ev.State = a.State
		ev.Attempt = a.Attempt
		ev.Message = fmt.Sprintf("%s: action %s/%s: %s", run.Key(), a.Task, a.Name, a.State)
		if a.Attempt > 1 {
			ev.Message += fmt.Sprintf(" (attempt %d)", a.Attempt)
		}
		if a.Worker != "" && a.State != RunPending {
			ev.Message += " on " + a.Worker
		}
		if a.State.Terminal() && !a.StartedAt.IsZero() && !a.FinishedAt.IsZero() {
			ev.Message += fmt.Sprintf(" after %s", a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond))
		}
		if a.Message != "" {
			ev.Message += ": " + a.Message
		}
		evs = append(evs, ev)
	}
	return evs
}
