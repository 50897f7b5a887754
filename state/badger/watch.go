package badger

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tinkops/tinkops/state"
)

// Watching.
//
// The writer publishes committed events to a hub: a ring of the most recent
// events and a channel that is closed and replaced on every publish to wake
// watchers. Each watcher has a goroutine and a cursor (the next sequence
// number it owes its reader). It copies events from the ring while its cursor
// is inside it and reads the log from disk when it is older than the ring
// (a watcher starting from an old sequence number, or one whose reader was
// slow). Events reach the ring only after they are on disk, so the disk
// always has whatever the ring lacks, and the cursor moves over sequence
// numbers rather than matches: there is no gap at the switch from disk to
// memory or back. The writer never waits for a watcher.

// hub holds recent events for watchers.
type hub struct {
	mu    sync.RWMutex
	ring  []state.Event
	start uint64 // oldest sequence number in ring
	end   uint64 // one past the newest
	wake  chan struct{}
}

func newHub(size int, next uint64) *hub {
	return &hub{ring: make([]state.Event, size), start: next, end: next, wake: make(chan struct{})}
}

// publish appends events, which must continue the sequence, and wakes every
// watcher.
func (h *hub) publish(evs []state.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	for _, ev := range evs {
		if ev.Seq != h.end {
			// Cannot happen: the writer publishes in commit order. If it
			// did, restarting the ring sends watchers to the disk,
			// which is always right.
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

// read copies up to max events from seq on. inRing is false if seq is older
// than the ring, and the caller must read the disk. Otherwise, when there is
// nothing yet, wake is closed on the next publish.
func (h *hub) read(seq uint64, max int, buf []state.Event) (evs []state.Event, next uint64, inRing bool, wake <-chan struct{}) {
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

// next returns the sequence number after the newest published event.
func (h *hub) next() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.end
}

// Watch implements state.Store.
func (s *Store) Watch(ctx context.Context, from uint64, filter state.EventFilter) (state.Watcher, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	if from == 0 {
		from = s.hub.next()
	} else if oldest := s.oldest.Load(); from < oldest {
		return nil, compacted(from, oldest)
	}

	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		s:      s,
		ch:     make(chan state.Event, 64),
		filter: filter,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.watchMu.Lock()
	if s.watchClosed {
		s.watchMu.Unlock()
		cancel()
		return nil, state.Errorf(state.EINTERNAL, "state store %s is closed", s.dir)
	}
	s.bg.Add(1)
	s.watchMu.Unlock()
	stop := context.AfterFunc(s.ctx, cancel)
	go func() {
		defer s.bg.Done()
		defer close(w.done)
		defer stop()
		defer close(w.ch)
		w.run(wctx, ctx, from)
	}()
	return w, nil
}

func compacted(from, oldest uint64) error {
	return state.Errorf(state.ENOTFOUND,
		"events before %d were removed by retention (asked from %d); resume from %d", oldest, from, oldest)
}

// watcher implements state.Watcher.
type watcher struct {
	s      *Store
	ch     chan state.Event
	filter state.EventFilter
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	err    error
	closed atomic.Bool
}

func (w *watcher) Events() <-chan state.Event { return w.ch }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) Close() error {
	w.closed.Store(true)
	w.cancel()
	<-w.done
	return nil
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// stopped records why the watch ended when its context did.
func (w *watcher) stopped(caller context.Context) {
	switch {
	case w.closed.Load():
	case caller.Err() != nil:
		w.fail(caller.Err())
	default:
		w.fail(state.Errorf(state.EINTERNAL, "state store %s closed", w.s.dir))
	}
}

const watchChunk = 256

func (w *watcher) run(ctx, caller context.Context, cursor uint64) {
	buf := make([]state.Event, 0, watchChunk)
	for {
		evs, next, inRing, wake := w.s.hub.read(cursor, watchChunk, buf)
		if !inRing {
			var err error
			evs, next, err = w.s.readLog(ctx, cursor, watchChunk)
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
