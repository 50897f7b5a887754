package state

import (
	"context"
	"time"
)

// Counters are a store's next event sequence number and next resource
// version.
type Counters struct {
	NextSeq uint64
	NextRV  uint64
}

// Staged is a batch checked against the current state, with its resource
// versions, times and sequence numbers assigned: what a store writes.
type Staged struct {
	// Result is what Apply returns; Result.Objects of deletions hold the
	// object as it was.
	Result *Result
	// Deleted flags, per Result.Objects entry, a deletion.
	Deleted []bool
	// Counters are the counters once the batch is written.
	Counters Counters
}

// Stage checks b's preconditions against the state that object and run
// return (nil, nil for "does not exist") and assigns resource versions from
// c.NextRV and sequence numbers from c.NextSeq, in the order the Batch
// documents. Every store implements Apply with it, so that the rules
// (codes, messages, event contents) are one piece of code whatever the
// backend. On error nothing is assigned.
func Stage(b *Batch, now time.Time, c Counters, object func(ObjectKey) (*Object, error), run func(RunKey) (*WorkflowRun, error)) (*Staged, error) {
	// Sized up front: a fleet's first sync stages 20,100 objects (200,100
	// at 100,000 machines), each with an event, and grown by appending
	// these slices were copied over and over. Empty ones stay nil.
	st := &Staged{Result: &Result{}}
	if n := len(b.Objects); n > 0 {
		st.Result.Objects, st.Deleted = make([]*Object, 0, n), make([]bool, 0, n)
	}
	if n := len(b.Runs); n > 0 {
		st.Result.Runs = make([]*WorkflowRun, 0, n)
	}
	var events []Event
	if n := len(b.Objects) + len(b.Runs) + len(b.Events); n > 0 {
		events = make([]Event, 0, n)
	}
	for _, op := range b.Objects {
		key := op.Object.Key()
		old, err := object(key)
		if err != nil {
			return nil, err
		}
		want := op.Object.ResourceVersion
		if op.Delete {
			if old == nil {
				return nil, Errorf(ENOTFOUND, "%s: not found", key)
			}
			if want != 0 && old.ResourceVersion != want {
				return nil, stale(key, want, old.ResourceVersion)
			}
			st.Result.Objects = append(st.Result.Objects, old)
			st.Deleted = append(st.Deleted, true)
			events = append(events, ObjectEvent(op, old, old, b.Actor, b.Revision, now))
			continue
		}
		var oldRV uint64
		if old != nil {
			oldRV = old.ResourceVersion
		}
		if err := Precondition(key, want, old != nil, oldRV); err != nil {
			return nil, err
		}
		obj := *op.Object
		obj.ResourceVersion = c.NextRV
		c.NextRV++
		obj.UpdatedAt = now
		obj.CreatedAt = now
		if old != nil {
			obj.CreatedAt = old.CreatedAt
		}
		st.Result.Objects = append(st.Result.Objects, &obj)
		st.Deleted = append(st.Deleted, false)
		events = append(events, ObjectEvent(op, old, &obj, b.Actor, b.Revision, now))
	}
	for _, in := range b.Runs {
		key := in.Key()
		old, err := run(key)
		if err != nil {
			return nil, err
		}
		var oldRV uint64
		if old != nil {
			oldRV = old.ResourceVersion
		}
		if err := Precondition(key, in.ResourceVersion, old != nil, oldRV); err != nil {
			return nil, err
		}
		r := *in
		r.ResourceVersion = c.NextRV
		c.NextRV++
		r.UpdatedAt = now
		r.CreatedAt = now
		if old != nil {
			r.CreatedAt = old.CreatedAt
		}
		st.Result.Runs = append(st.Result.Runs, &r)
		events = append(events, RunEvents(old, &r, b.Actor, b.Revision, now)...)
	}
	for _, ev := range b.Events {
		if ev.Time.IsZero() {
			ev.Time = now
		}
		events = append(events, ev)
	}
	for i := range events {
		b.Attribute(&events[i])
		events[i].Seq = c.NextSeq
		c.NextSeq++
	}
	if len(events) > 0 { // runs that change no state log none
		st.Result.Events = events
	}
	st.Counters = c
	return st, nil
}

func stale(key interface{ String() string }, want, have uint64) error {
	return Errorf(ECONFLICT, "%s: resourceVersion %d is stale (current %d)", key, want, have)
}

// Precondition checks a write's resourceVersion against what is stored:
// 0 creates (nothing may exist), anything else must match.
func Precondition(key interface{ String() string }, want uint64, exists bool, have uint64) error {
	switch {
	case want == 0 && exists:
		return Errorf(ECONFLICT, "%s: already exists (resourceVersion %d)", key, have)
	case want != 0 && !exists:
		return Errorf(ENOTFOUND, "%s: not found (expected resourceVersion %d)", key, want)
	case want != 0 && have != want:
		return stale(key, want, have)
	}
	return nil
}

// Applier is the part of a Store that the one-change shorthands need.
type Applier interface {
	Apply(ctx context.Context, b *Batch) (*Result, error)
}

// PutObject is Store.PutObject in terms of Apply, for stores to share.
func PutObject(ctx context.Context, s Applier, actor Actor, obj *Object) (*Object, error) {
	b := &Batch{Actor: actor}
	b.Put(obj, "")
	res, err := s.Apply(ctx, b)
	if err != nil {
		return nil, err
	}
	return res.Objects[0], nil
}

// DeleteObject is Store.DeleteObject in terms of Apply.
func DeleteObject(ctx context.Context, s Applier, actor Actor, key ObjectKey, resourceVersion uint64) error {
	b := &Batch{Actor: actor}
	b.Delete(key, resourceVersion, "")
	_, err := s.Apply(ctx, b)
	return err
}

// PutRun is Store.PutRun in terms of Apply.
func PutRun(ctx context.Context, s Applier, actor Actor, run *WorkflowRun) (*WorkflowRun, error) {
	res, err := s.Apply(ctx, &Batch{Actor: actor, Runs: []*WorkflowRun{run}})
	if err != nil {
		return nil, err
	}
	return res.Runs[0], nil
}
