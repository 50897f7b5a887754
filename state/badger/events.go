package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

const defaultEventLimit = 1000

// Events implements state.Store.
func (s *Store) Events(ctx context.Context, q state.EventQuery) ([]state.Event, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	var out []state.Event
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		from := q.From
		if !q.Descending {
			oldest := s.oldest.Load()
			if from == 0 {
				from = oldest
			} else if from < oldest {
				return compacted(from, oldest)
			}
		} else if from == 0 {
			from = ^uint64(0)
		}
		it := txn.NewIterator(badgerdb.IteratorOptions{
			Prefix:         []byte(prefixEvent),
			Reverse:        q.Descending,
			PrefetchValues: true,
			PrefetchSize:   min(limit, 100),
		})
		defer it.Close()
		n := 0
		for it.Seek(eventKey(from)); it.Valid() && len(out) < limit; it.Next() {
			if n++; n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			ev, other, err := decodeEventOf(it.Item(), q.Filter)
			if err != nil {
				return err
			}
			if !other && q.Filter.Matches(ev) {
				out = append(out, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapInternal(err, "read events from %s", s.dir)
	}
	return out, nil
}

// EventBounds implements state.Store.
func (s *Store) EventBounds(ctx context.Context) (state.EventBounds, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return state.EventBounds{}, err
	}
	defer leave()
	latest := s.hub.Next() - 1
	return state.EventBounds{Oldest: min(s.oldest.Load(), latest+1), Latest: latest}, nil
}

// readLog reads up to max events from seq on, for a watcher, and returns the
// sequence number to continue from. The log has no holes, so the first event
// read must be seq itself; if it is not, retention removed it. Events the
// filter's kind or types rule out are passed over undecoded (otherEvent):
// a fleet's first sync writes an event per object, and every watcher that
// fell behind it decoded all of them, 9.6 s of CPU after a 100,000-machine
// sync. A call passes over at most skipFactor times max events, so that
// it returns within bounded time even when none matches.
func (s *Store) readLog(ctx context.Context, seq uint64, max int, filter state.EventFilter) ([]state.Event, uint64, error) {
	var out []state.Event
	next := seq
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(prefixEvent), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(eventKey(seq)); it.Valid() && len(out) < max && next-seq < uint64(skipFactor*max); it.Next() {
			got := eventSeq(it.Item().Key())
			if got != next {
				break
			}
			ev, other, err := decodeEventOf(it.Item(), filter)
			if err != nil {
				return err
			}
			if !other {
				out = append(out, ev)
			}
			next++
		}
		return nil
	})
	if err != nil {
		return nil, seq, wrapInternal(err, "read events from %s", s.dir)
	}
	if next == seq {
		if oldest := s.oldest.Load(); seq < oldest {
			return nil, seq, compacted(seq, oldest)
		}
		return nil, seq, state.Errorf(state.EINTERNAL, "event log of %s has no event %d", s.dir, seq)
	}
	return out, next, nil
}

// skipFactor bounds how many events a readLog call passes over.
const skipFactor = 64

// otherEvent reports, from an event's JSON without decoding it, that
// filter rules the event out by its type or kind. An event's record has no
// nested object and its strings escape their quotes, so `"kind":"` in it
// can only be the kind's key; a record without it (a store-wide event) or
// with an escape in the value is decoded, never passed over.
func otherEvent(v []byte, filter state.EventFilter) bool {
	if len(filter.Types) > 0 && otherType(v, filter.Types) {
		return true
	}
	if filter.Kind != "" {
		k, ok := firstString(v, `"kind":"`)
		return ok && string(k) != filter.Kind
	}
	return false
}

// otherType reports, from an event's JSON without decoding it, that the
// event is of none of types (a follower of run states skips the action
// states, most of the log, at a fraction of a decode's cost). A quote
// inside a JSON string is escaped, and an event has no nested object, so
// the first `"type":"` of the record is its type's key; a record without
// one, or with an escape in the value, is decoded, never skipped.
func otherType(v []byte, types []state.EventType) bool {
	t, ok := firstString(v, `"type":"`)
	return ok && !oneOf(t, types)
}

// firstString returns the value of the first string-valued key in a
// record's JSON (key is `"name":"`), without decoding the record; ok is
// false when there is none or its value holds an escape. A JSON string
// escapes its quotes, so no value holds key's bytes: the first match is a
// key, and the callers know which by the record's field order.
func firstString(v []byte, key string) (_ []byte, ok bool) {
	i := bytes.Index(v, []byte(key))
	if i < 0 {
		return nil, false
	}
	t := v[i+len(key):]
	j := bytes.IndexByte(t, '"')
	if j < 0 || bytes.IndexByte(t[:j], '\\') >= 0 {
		return nil, false
	}
	return t[:j], true
}

// oneOf reports whether s is one of set, comparing without converting s
// (a scan calls it for every record: no allocation).
func oneOf[T ~string](s []byte, set []T) bool {
	for _, want := range set {
		if string(s) == string(want) {
			return true
		}
	}
	return false
}

func decodeEvent(item *badgerdb.Item) (state.Event, error) {
	ev, _, err := decodeEventOf(item, state.EventFilter{})
	return ev, err
}

// decodeEventOf unpacks an event's record once and decodes it, unless
// otherEvent says filter rules it out (other: not decoded).
func decodeEventOf(item *badgerdb.Item, filter state.EventFilter) (ev state.Event, other bool, err error) {
	err = item.Value(func(v []byte) error {
		v, err := unpack(v)
		if err != nil {
			return err
		}
		if otherEvent(v, filter) {
			other = true
			return nil
		}
		return json.Unmarshal(v, &ev)
	})
	if err != nil {
		return ev, false, state.Errorf(state.EINTERNAL, "decode event %d: %v", eventSeq(item.Key()), err)
	}
	return ev, other, nil
}

// CompactEvents implements state.Store. It deletes the oldest events in
// transactions of bounded size, moving the oldest-retained mark forward
// before each, so that a reader that finds an event missing always finds the
// mark past it and reports retention rather than a hole. Sequence numbers are
// kept in the counters record, not derived from the log, so removing events
// never renumbers anything.
func (s *Store) CompactEvents(ctx context.Context) (int, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return 0, err
	}
	defer leave()
	s.compactMu.Lock()
	defer s.compactMu.Unlock()

	r := s.opts.Retention
	oldest := s.oldest.Load()
	latest := s.hub.Next() - 1
	cut := oldest
	if r.MaxEvents > 0 && latest >= uint64(r.MaxEvents) {
		cut = max(cut, latest-uint64(r.MaxEvents)+1)
	}
	if r.MaxAge > 0 {
		threshold := s.opts.Now().Add(-r.MaxAge)
		err := s.snapshot(func(txn *badgerdb.Txn) error {
			it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(prefixEvent), PrefetchValues: true, PrefetchSize: 100})
			defer it.Close()
			for it.Seek(eventKey(cut)); it.Valid(); it.Next() {
				ev, err := decodeEvent(it.Item())
				if err != nil {
					return err
				}
				if ev.Seq > latest || !ev.Time.Before(threshold) {
					return nil
				}
				cut = ev.Seq + 1
				if cut%1024 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		})
		if err != nil {
			return 0, wrapInternal(err, "compact events in %s", s.dir)
		}
	}
	if cut <= oldest {
		return 0, nil
	}

	removed := 0
	step := uint64(s.maxEntries / 2)
	for lo := oldest; lo < cut; {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if err := s.ctx.Err(); err != nil {
			return removed, nil // closing; the rest waits for the next open
		}
		hi := min(lo+step, cut)
		s.oldest.Store(hi)
		err := s.db.Update(func(txn *badgerdb.Txn) error {
			for seq := lo; seq < hi; seq++ {
				if err := txn.Delete(eventKey(seq)); err != nil {
					return err
				}
			}
			return txn.Set([]byte(keyOldest), binary.BigEndian.AppendUint64(nil, hi))
		})
		if err != nil {
			return removed, wrapInternal(err, "compact events in %s", s.dir)
		}
		removed += int(hi - lo)
		s.stats.Compacted.Add(hi - lo)
		lo = hi
	}
	return removed, nil
}
