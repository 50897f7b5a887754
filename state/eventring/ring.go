// Package eventring implements Store.Watch for the stores: a ring of the
// most recent events and watchers that follow it, falling back to the
// store's log when they are behind it.
//
// A store publishes committed events to a Ring: it keeps the newest and
// closes a channel on every publish to wake watchers. Each watcher has a
// goroutine and a cursor (the next sequence number it owes its reader). It
// copies events from the ring while its cursor is inside it and reads the
// store's log when it is older than the ring (a watcher starting from an old
// sequence number, or one whose reader was slow). Events reach the ring only
// after they are committed, so the log always has whatever the ring lacks,
// and the cursor moves over sequence numbers rather than matches: there is no
// gap at the switch from log to memory or back. Publishing never waits for a
// watcher.
package eventring

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tinkops/tinkops/state"
)

// Ring holds recent events for watchers.
type Ring struct {
	mu    sync.RWMutex
	ring  []state.Event
	start uint64 // oldest sequence number in ring
	end   uint64 // one past the newest
	wake  chan struct{}
}

// New returns a ring of size events whose next event is next.
func New(size int, next uint64) *Ring {
	return &Ring{ring: make([]state.Event, size), start: next, end: next, wake: make(chan struct{})}
}

// Publish appends events, which must continue the sequence, and wakes every
// watcher. Events already in the ring are ignored, so that a store may
// publish what it wrote and what it read back from the log alike.
func (h *Ring) Publish(evs []state.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	for _, ev := range evs {
		if ev.Seq < h.end {
			continue
		}
		if ev.Seq != h.end {
			// A hole (the store skipped ahead): restarting the ring
			// sends watchers to the log, which is always right.
			h.start = ev.Seq
		}
		h.ring[ev.Seq%uint64(len(h.ring))] = ev
		h.end = ev.Seq + 1
		if h.end-h.start > uint64(len(h.ring)) {
			h.start = h.end - uint64(len(h.ring))
		}
	}
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
}

// Advance moves the ring's end to next without events, waking watchers, who
// then read the events before next from the log. A store uses it when it
// learns that the log grew without reading the events itself.
func (h *Ring) Advance(next uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if next <= h.end {
		return
	}
	h.start, h.end = next, next
	close(h.wake)
	h.wake = make(chan struct{})
}

// read copies up to max events from seq on. inRing is false if seq is older
// than the ring, and the caller must read the log. Otherwise, when there is
// nothing yet, wake is closed on the next publish.
func (h *Ring) read(seq uint64, max int, buf []state.Event) (evs []state.Event, next uint64, inRing bool, wake <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if seq < h.start {
		return nil, seq, false, nil
	}
	if seq >= h.end {
		return nil, seq, true, h.wake
	}
	evs = buf[:0]
	for ; seq < h.end && len(evs) < max; seq++ {
		evs = append(evs, h.ring[seq%uint64(len(h.ring))])
	}
	return evs, seq, true, nil
}

// Next returns the sequence number after the newest published event.
func (h *Ring) Next() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.end
}

// ReadLog reads up to max events of the store's log from seq on and returns
// the sequence number to continue from. It may leave out events filter
// does not select (a store that can tell without decoding them), so it may
// return none and a sequence number past seq. It fails with ENOTFOUND when
// retention removed seq.
type ReadLog func(ctx context.Context, seq uint64, max int, filter state.EventFilter) ([]state.Event, uint64, error)

// Watcher implements state.Watcher over a Ring and a ReadLog.
type Watcher struct {
	ch     chan state.Event
	filter state.EventFilter
	cancel context.CancelFunc
	done   chan struct{}
	closed string // the EINTERNAL message when the store closes

	mu       sync.Mutex
	err      error
	isClosed atomic.Bool
}

// NewWatcher returns a watcher delivering the events that filter selects;
// cancel ends its run. closedMsg is its error's message when it ends
// because the store closed.
func NewWatcher(filter state.EventFilter, cancel context.CancelFunc, closedMsg string) *Watcher {
	return &Watcher{ch: make(chan state.Event, 64), filter: filter, cancel: cancel, done: make(chan struct{}), closed: closedMsg}
}

// Events implements state.Watcher.
func (w *Watcher) Events() <-chan state.Event { return w.ch }

// Err implements state.Watcher.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close implements state.Watcher.
func (w *Watcher) Close() error {
	w.isClosed.Store(true)
	w.cancel()
	<-w.done
	return nil
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// stopped records why the watch ended when its context did.
func (w *Watcher) stopped(caller context.Context) {
	switch {
	case w.isClosed.Load():
	case caller.Err() != nil:
		w.fail(caller.Err())
	default:
		w.fail(state.Errorf(state.EINTERNAL, "%s", w.closed))
	}
}

const chunk = 256

// Run delivers events from cursor on until ctx ends (caller is the
// context the watch was asked with, to tell its end from the store's) and
// then closes the channel. The store runs it in a goroutine it owns.
func (w *Watcher) Run(ctx, caller context.Context, h *Ring, cursor uint64, readLog ReadLog) {
	defer close(w.done)
	defer close(w.ch)
	buf := make([]state.Event, 0, chunk)
	for {
		evs, next, inRing, wake := h.read(cursor, chunk, buf)
		if !inRing {
			var err error
			evs, next, err = readLog(ctx, cursor, chunk, w.filter)
			if err != nil {
				if ctx.Err() != nil {
					w.stopped(caller)
				} else {
					w.fail(err)
				}
				return
			}
		}
		for _, ev := range evs {
			if !w.filter.Matches(ev) {
				continue
			}
			select {
			case w.ch <- ev:
			case <-ctx.Done():
				w.stopped(caller)
				return
			}
		}
		cursor = next
		if wake != nil {
			select {
			case <-wake:
			case <-ctx.Done():
				w.stopped(caller)
				return
			}
		} else if ctx.Err() != nil {
			w.stopped(caller)
			return
		}
	}
}
