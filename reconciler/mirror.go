package reconciler

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tinkops/tinkops/state"
)

// Keeping the store's objects in memory.
//
// A plan compares the desired set with every object in the store. Reading
// 20,000 objects from Badger and decoding them on every sync cost more than
// the rest of a one-file commit, so the reconciler keeps a mirror of the
// objects and brings it up to date before each plan instead:
//
//   - The store's event log says what changed: every object write appends an
//     event naming the object (state.ObjectEvent), sequence numbers are
//     assigned in commit order without gaps, and an event is readable only
//     once its change is (Badger: the writer publishes committed batches;
//     EventBounds.Latest never runs ahead of what a reader sees).
//   - The mirror knows the sequence number up to which it reflects the
//     store. Before a plan it reads EventBounds, then the events after its
//     number up to the latest, and reads again (GetObject) each object an
//     event names: an API write, an engine status update, a deletion. The
//     read gives the object as it is now, never older than the event, so
//     events may be applied late, twice or out of step without harm.
//   - The reconciler's own batches update the mirror from Apply's result
//     (the objects as written), and their events, a contiguous range of
//     sequence numbers, are skipped when catching up rather than read
//     back: a full sync writes 40,000 events.
//   - Anything unexpected starts it afresh from a full listing: the first
//     plan, a failed or conflicting Apply (the plan was made from state that
//     moved), events removed by retention before they were read, or more
//     events to read than objects to list.
//
// So a plan is never made from state older than the moment its catch-up
// began, which is what listing the store gave, too. Writes that land after
// it are caught by Apply's resourceVersion preconditions, as before: the
// batch fails with ECONFLICT and the plan is made again.
//
// Runs are not mirrored: a plan needs only the runs of the workflows and
// hardware it changes (see needsRuns), which it reads from the store.
//
// The mirror also keeps what the last plan learned (memo, see
// incremental.go) and the keys of the objects that changed since
// (touched), so that the next plan need look only at those and at the
// declared objects that changed.
type mirror struct {
	mu     sync.Mutex
	loaded bool
	// seq is the sequence number up to which every event is reflected.
	seq     uint64
	objects map[state.ObjectKey]*state.Object
	// gitObjects counts the objects of Source git.
	gitObjects int
	// memo is what the last plan from a loaded set left for the next
	// (nil: none); touched holds the key of every object put or removed
	// since it was made. A listing drops both.
	memo    *planMemo
	touched map[state.ObjectKey]struct{}
	// own holds the event ranges of this reconciler's batches beyond seq,
	// in order; their changes are reflected already.
	own []seqRange
	// reloads and fetched count full listings and objects read again, and
	// incremental the plans made from a memo, for tests.
	reloads, fetched, incremental int
}

type seqRange struct{ first, last uint64 }

// maxEventPage is how many events one read of the log asks for.
const maxEventPage = 2000

// view brings the mirror up to date and calls fn with it. fn must not keep
// or modify the map or its objects.
func (m *mirror) view(ctx context.Context, st state.Store, fn func(map[state.ObjectKey]*state.Object)) error {
	return m.viewLocked(ctx, st, func(m *mirror) { fn(m.objects) })
}

// viewLocked is view giving fn the mirror itself, under its lock: fn may
// read and replace the memo (and reset touched), and must not modify the
// objects.
func (m *mirror) viewLocked(ctx context.Context, st state.Store, fn func(*mirror)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUpLocked(ctx, st); err != nil {
		m.loaded, m.memo = false, nil
		return err
	}
	fn(m)
	return nil
}

// putLocked makes obj the object at key, keeping the count of Git's and
// the touched keys.
func (m *mirror) putLocked(key state.ObjectKey, obj *state.Object) {
	m.dropLocked(key)
	m.objects[key] = obj
	if obj.Source == state.SourceGit {
		m.gitObjects++
	}
}

// dropLocked removes the object at key, if any, and marks key touched.
func (m *mirror) dropLocked(key state.ObjectKey) {
	if old, ok := m.objects[key]; ok {
		if old.Source == state.SourceGit {
			m.gitObjects--
		}
		delete(m.objects, key)
	}
	if m.memo != nil {
		m.touched[key] = struct{}{}
	}
}

// rememberLocked makes memo the last plan's, with nothing touched since.
func (m *mirror) rememberLocked(memo *planMemo) {
	m.memo = memo
	m.touched = map[state.ObjectKey]struct{}{}
}

// catchUpLocked reads the changes since seq, or everything.
func (m *mirror) catchUpLocked(ctx context.Context, st state.Store) error {
	bounds, err := st.EventBounds(ctx)
	if err != nil {
		return fmt.Errorf("read event bounds: %w", err)
	}
	// Reading an event costs about what reading an object does: past as
	// many events as objects, listing them all is cheaper.
	if !m.loaded || bounds.Latest < m.seq || m.unreadLocked(bounds.Latest) > uint64(max(len(m.objects), 10_000)) {
		return m.reloadLocked(ctx, st)
	}
	dirty := map[state.ObjectKey]bool{}
	for m.seq < bounds.Latest {
		m.skipOwnLocked()
		if m.seq >= bounds.Latest {
			break
		}
		evs, err := st.Events(ctx, state.EventQuery{From: m.seq + 1, Limit: maxEventPage})
		if state.ErrorCode(err) == state.ENOTFOUND {
			return m.reloadLocked(ctx, st) // removed by retention before we read them
		}
		if err != nil {
			return fmt.Errorf("read events after %d: %w", m.seq, err)
		}
		if len(evs) == 0 || evs[0].Seq != m.seq+1 {
			// The log promises no holes; if it has one, do not guess.
			return m.reloadLocked(ctx, st)
		}
		for _, ev := range evs {
			if m.ownLocked(ev.Seq) {
				m.seq = ev.Seq
				continue
			}
			if ev.Seq != m.seq+1 {
				return m.reloadLocked(ctx, st)
			}
			m.seq = ev.Seq
			if ev.Kind != "" && ev.Name != "" && ev.Run == 0 {
				dirty[state.ObjectKey{Kind: ev.Kind, Namespace: ev.Namespace, Name: ev.Name}] = true
			}
		}
	}
	m.skipOwnLocked()
	for key := range dirty {
		obj, err := st.GetObject(ctx, key)
		switch {
		case state.ErrorCode(err) == state.ENOTFOUND:
			m.dropLocked(key)
		case state.ErrorCode(err) == state.EINVALID:
			// Not an object's key (an event about something else).
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			m.putLocked(key, obj)
		}
		m.fetched++
	}
	return nil
}

// skipOwnLocked moves seq past the reconciler's own events when they come
// next.
func (m *mirror) skipOwnLocked() {
	for len(m.own) > 0 && m.own[0].first <= m.seq+1 {
		m.seq = max(m.seq, m.own[0].last)
		m.own = m.own[1:]
	}
}

// unreadLocked counts the events up to latest that catching up reads.
func (m *mirror) unreadLocked(latest uint64) uint64 {
	n := latest - m.seq
	for _, r := range m.own {
		if r.first > m.seq && r.last <= latest {
			n -= r.last - r.first + 1
		}
	}
	return n
}

// ownLocked reports whether seq is one of the reconciler's own events.
func (m *mirror) ownLocked(seq uint64) bool {
	for _, r := range m.own {
		if seq >= r.first && seq <= r.last {
			return true
		}
		if r.first > seq {
			break
		}
	}
	return false
}

// reloadLocked lists every object. The latest sequence number is read
// first: the listing (one read transaction) shows at least the changes up
// to it.
func (m *mirror) reloadLocked(ctx context.Context, st state.Store) error {
	bounds, err := st.EventBounds(ctx)
	if err != nil {
		return fmt.Errorf("read event bounds: %w", err)
	}
	page, err := st.ListObjects(ctx, state.ObjectQuery{})
	if err != nil {
		return fmt.Errorf("read objects: %w", err)
	}
	if page.Continue != "" {
		return fmt.Errorf("read objects: the store paged a listing without a limit")
	}
	m.objects = make(map[state.ObjectKey]*state.Object, len(page.Objects))
	m.gitObjects = 0
	m.memo, m.touched = nil, nil
	for _, o := range page.Objects {
		m.objects[o.Key()] = o
		if o.Source == state.SourceGit {
			m.gitObjects++
		}
	}
	m.seq, m.own, m.loaded = bounds.Latest, nil, true
	m.reloads++
	return nil
}

// applied records a batch of the reconciler's that the store wrote, with
// its result.
func (m *mirror) applied(b *state.Batch, res *state.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded || res == nil || len(res.Objects) != len(b.Objects) {
		m.loaded, m.memo = false, nil
		return
	}
	for i, op := range b.Objects {
		if op.Delete {
			m.dropLocked(op.Object.Key())
		} else {
			m.putLocked(res.Objects[i].Key(), res.Objects[i])
		}
	}
	if n := len(res.Events); n > 0 {
		r := seqRange{res.Events[0].Seq, res.Events[n-1].Seq}
		if r.last-r.first+1 != uint64(n) {
			m.loaded, m.memo = false, nil // not one range; never seen, but do not guess
			return
		}
		i := len(m.own)
		for i > 0 && m.own[i-1].first > r.first {
			i--
		}
		m.own = slices.Insert(m.own, i, r)
		m.skipOwnLocked()
	}
}

// invalidate makes the next plan list every object again.
func (m *mirror) invalidate() {
	m.mu.Lock()
	m.loaded, m.memo = false, nil
	m.mu.Unlock()
}
