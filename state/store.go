package state

import (
	"context"
	"time"
)

// Store keeps the actual state. Every method may also return EINTERNAL (I/O
// failure, damaged data, store closed); the codes listed are the ones a caller
// can act on.
//
// Writes are durable when they return: an acknowledged change survives a
// crash of the process or the machine. Reads see a consistent snapshot: never
// part of a batch.
type Store interface {
	// GetObject returns the object with key. ENOTFOUND if there is none;
	// EINVALID if the key is malformed.
	GetObject(ctx context.Context, key ObjectKey) (*Object, error)

	// ListObjects returns a page of the objects that q selects, in key
	// order. EINVALID if the continue token is not one of this query's.
	ListObjects(ctx context.Context, q ObjectQuery) (*ObjectPage, error)

	// PutObject creates (obj.ResourceVersion 0) or updates (the current
	// version) an object and appends its event. It returns the object as
	// written. ECONFLICT if the object exists when creating or has moved on
	// from obj.ResourceVersion when updating; ENOTFOUND if it is updated
	// but does not exist; EINVALID if obj is malformed.
	PutObject(ctx context.Context, actor Actor, obj *Object) (*Object, error)

	// DeleteObject deletes the object with key and appends its event;
	// resourceVersion 0 deletes any version. ENOTFOUND if there is no such
	// object; ECONFLICT if it has moved on from resourceVersion.
	DeleteObject(ctx context.Context, actor Actor, key ObjectKey, resourceVersion uint64) error

	// GetRun returns one run of a workflow. ENOTFOUND if there is none.
	GetRun(ctx context.Context, key RunKey) (*WorkflowRun, error)

	// ListRuns returns a page of the runs that q selects, in key order.
	// EINVALID for a foreign continue token.
	ListRuns(ctx context.Context, q RunQuery) (*RunPage, error)

	// PutRun creates or updates a run, with the same version rules and codes
	// as PutObject, and appends its run-state and action-state events.
	PutRun(ctx context.Context, actor Actor, run *WorkflowRun) (*WorkflowRun, error)

	// Apply writes a batch atomically and durably, with one event per
	// change. If any change fails its precondition, nothing is written and
	// the error (ECONFLICT or ENOTFOUND) names that change; concurrent
	// batches are unaffected. EINVALID if the batch is malformed or an
	// object too large. If ctx ends while the batch still waits for its
	// turn, Apply returns the context's error and nothing is written; once
	// writing has begun, Apply waits for the outcome.
	Apply(ctx context.Context, b *Batch) (*Result, error)

	// Events returns events from the log in sequence order (or reverse).
	// ENOTFOUND if q.From names events removed by retention.
	Events(ctx context.Context, q EventQuery) ([]Event, error)

	// EventBounds returns the range of retained events.
	EventBounds(ctx context.Context) (EventBounds, error)

	// Watch delivers every event with Seq >= from that matches filter, in
	// order and without gaps: first the retained history, then live events
	// as they are written. from 0 means "only events written from now on".
	// A slow watcher never slows writers; it falls back to reading the log
	// from disk and only fails (ENOTFOUND, through Watcher.Err) if retention
	// removes events it has not read yet. ENOTFOUND at once if from is older
	// than the oldest retained event. The watch ends with ctx, Watcher.Close
	// or Store.Close.
	Watch(ctx context.Context, from uint64, filter EventFilter) (Watcher, error)

	// SyncStatus returns the sync status last written through Apply, or a
	// zero SyncStatus if none was.
	SyncStatus(ctx context.Context) (*SyncStatus, error)

	// CompactEvents removes events outside the retention policy now and
	// returns how many it removed. Sequence numbers of remaining and future
	// events are unchanged. Stores also run it periodically.
	CompactEvents(ctx context.Context) (int, error)

	// Close stops background work, ends watches, waits for in-flight calls,
	// flushes and releases the store's resources. Calls after Close fail
	// with EINTERNAL.
	Close() error
}

// Retention says which events the log keeps. The zero value keeps the
// defaults; a negative field removes that limit.
type Retention struct {
	// MaxEvents is how many of the newest events are kept. Default
	// 1,000,000.
	MaxEvents int
	// MaxAge is how old an event may get before it is removed. Default 30
	// days, so that "what happened last week" always has an answer.
	MaxAge time.Duration
}

// Defaults for Retention.
const (
	DefaultMaxEvents = 1_000_000
	DefaultMaxAge    = 30 * 24 * time.Hour
)

// WithDefaults returns r with zero fields set to their defaults and negative
// ones set to 0, which then means "no limit".
func (r Retention) WithDefaults() Retention {
	switch {
	case r.MaxEvents == 0:
		r.MaxEvents = DefaultMaxEvents
	case r.MaxEvents < 0:
		r.MaxEvents = 0
	}
	switch {
	case r.MaxAge == 0:
		r.MaxAge = DefaultMaxAge
	case r.MaxAge < 0:
		r.MaxAge = 0
	}
	return r
}
