package badger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// Batches larger than one Badger transaction.
//
// Such a batch is written as a redo log: its key writes are staged in chunks
// under prefixStage (invisible to readers, who never look there), then a
// record under keyRedo commits it, then the chunks are copied into place and
// the staging area is cleared. The keyRedo write is the commit point:
//
//   - a crash before it leaves only staged chunks, which Open deletes: the
//     batch never happened (and was never acknowledged);
//   - a crash after it leaves the record, and Open copies every chunk into
//     place again before serving anything (copying is idempotent, and no
//     later write can exist, since the writer waits for the copy): the
//     batch happened in full.
//
// While the chunks are copied in a running store, the writer holds gate
// exclusively; readers take their snapshots under the shared side, so a
// snapshot is taken either before the first chunk or after the last.

// redoRecord is the value under keyRedo.
type redoRecord struct {
	Chunks int `json:"chunks"`
}

func (w *writer) commitSplit(p *prepared) {
	s := w.s
	entries := append(p.entries, entry{key: []byte(keyCounters), value: p.after.encode()})
	chunks := encodeChunks(entries, s.maxBytes/2, s.maxEntries/2)
	// The chunks hold every key and value now: let the batch's own copy go
	// (a fleet's first sync: ~25 MB held twice while Badger flushes).
	p.entries, entries = nil, nil

	fail := func(err error) {
		w.next = w.committed
		p.req.reply(nil, wrapInternal(err, "write large batch to %s", s.dir))
	}
	for i, c := range chunks {
		if err := s.db.Update(func(txn *badgerdb.Txn) error {
			return txn.Set(stageKey(i), c)
		}); err != nil {
			s.clearStage(len(chunks))
			fail(err)
			return
		}
	}
	s.callHook("split:staged")
	rec, _ := json.Marshal(redoRecord{Chunks: len(chunks)})
	if err := s.db.Update(func(txn *badgerdb.Txn) error {
		return txn.Set([]byte(keyRedo), rec)
	}); err != nil {
		s.clearStage(len(chunks))
		fail(err)
		return
	}
	s.callHook("split:marked")

	s.gate.Lock()
	err := s.applyChunks(context.Background(), chunks, "split")
	if err == nil {
		err = s.clearRedo(len(chunks))
	}
	if err != nil {
		// The batch is committed but only partly in place. Readers must
		// not see that, and reopening finishes it: stop here.
		e := state.Errorf(state.EINTERNAL, "large batch in %s is committed but not in place, reopen the store: %v", s.dir, err)
		s.broken.Store(e)
		s.gate.Unlock()
		p.req.reply(nil, e)
		return
	}
	s.gate.Unlock()
	s.callHook("split:done")

	w.committed = p.after
	w.next = p.after
	w.cacheRuns([]*prepared{p})
	s.stats.Splits.Add(1)
	s.stats.Txns.Add(uint64(2*len(chunks) + 2))
	w.acknowledge([]*prepared{p})
}

// applyChunks copies staged chunks into place, one transaction each.
func (s *Store) applyChunks(ctx context.Context, chunks [][]byte, hookPrefix string) error {
	for i, c := range chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := decodeChunk(c)
		if err != nil {
			return damaged(s.dir, "staged chunk %d: %v", i, err)
		}
		if err := s.db.Update(func(txn *badgerdb.Txn) error {
			return addEntries(txn, entries)
		}); err != nil {
			return err
		}
		s.callHook(fmt.Sprintf("%s:applied:%d", hookPrefix, i+1))
	}
	return nil
}

// clearRedo deletes the commit record first (so that a crash from here on
// replays nothing) and then the staged chunks.
func (s *Store) clearRedo(n int) error {
	if err := s.db.Update(func(txn *badgerdb.Txn) error {
		return txn.Delete([]byte(keyRedo))
	}); err != nil {
		return err
	}
	return s.clearStage(n)
}

// clearStage deletes staged chunks 0..n-1, as many per transaction as fit.
func (s *Store) clearStage(n int) error {
	per := int(s.maxEntries / 2)
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		if err := s.db.Update(func(txn *badgerdb.Txn) error {
			for i := start; i < end; i++ {
				if err := txn.Delete(stageKey(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// recoverSplit runs at Open, before anything else reads or writes: it
// finishes a committed split batch or discards an uncommitted one.
func (s *Store) recoverSplit(ctx context.Context) error {
	var rec *redoRecord
	var staged int
	err := s.db.View(func(txn *badgerdb.Txn) error {
		v, ok, err := get(txn, []byte(keyRedo))
		if err != nil {
			return err
		}
		if ok {
			rec = &redoRecord{}
			if err := json.Unmarshal(v, rec); err != nil || rec.Chunks <= 0 {
				return damaged(s.dir, "redo record is malformed")
			}
		}
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(prefixStage)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			staged = max(staged, int(binary.BigEndian.Uint64(it.Item().Key()[len(prefixStage):]))+1)
		}
		return nil
	})
	if err != nil {
		return wrapInternal(err, "recover %s", s.dir)
	}
	if rec == nil {
		if staged == 0 {
			return nil
		}
		s.opts.Logger.Info("discarding a large batch interrupted before it was committed", "dir", s.dir, "chunks", staged)
		s.stats.Discarded.Add(1)
		return wrapInternal(s.clearStage(staged), "recover %s", s.dir)
	}

	s.opts.Logger.Info("finishing a large batch interrupted after it was committed", "dir", s.dir, "chunks", rec.Chunks)
	chunks := make([][]byte, rec.Chunks)
	err = s.db.View(func(txn *badgerdb.Txn) error {
		for i := range chunks {
			v, ok, err := get(txn, stageKey(i))
			if err != nil {
				return err
			}
			if !ok {
				return damaged(s.dir, "staged chunk %d of %d is missing", i, rec.Chunks)
			}
			chunks[i] = v
		}
		return nil
	})
	if err == nil {
		err = s.applyChunks(ctx, chunks, "recover")
	}
	if err == nil {
		err = s.clearRedo(max(rec.Chunks, staged))
	}
	if err == nil {
		s.stats.Finished.Add(1)
	}
	return wrapInternal(err, "recover %s", s.dir)
}

func (s *Store) callHook(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}

// encodeChunks packs entries into chunks of at most maxBytes encoded bytes
// and maxEntries entries. Each entry is
//
//	op (1: set, 2: delete) | uvarint key length | key | uvarint value length | value
func encodeChunks(entries []entry, maxBytes, maxEntries int64) [][]byte {
	// First the chunks' bounds and exact sizes, then each chunk in one
	// allocation: grown by appending, a 100,000-machine sync's 230 MB of
	// chunks cost 3 s of copying.
	type bound struct{ end, size int }
	var bounds []bound
	size, n := 0, int64(0)
	for i, e := range entries {
		need := entryLen(e)
		if n > 0 && (int64(size+need) > maxBytes || n+1 > maxEntries) {
			bounds = append(bounds, bound{i, size})
			size, n = 0, 0
		}
		size += need
		n++
	}
	if n > 0 {
		bounds = append(bounds, bound{len(entries), size})
	}
	chunks := make([][]byte, 0, len(bounds))
	start := 0
	for _, b := range bounds {
		cur := make([]byte, 0, b.size)
		for _, e := range entries[start:b.end] {
			op := byte(1)
			if e.del {
				op = 2
			}
			cur = append(cur, op)
			cur = binary.AppendUvarint(cur, uint64(len(e.key)))
			cur = append(cur, e.key...)
			cur = binary.AppendUvarint(cur, uint64(len(e.value)))
			cur = append(cur, e.value...)
		}
		chunks = append(chunks, cur)
		start = b.end
	}
	return chunks
}

// entryLen is the encoded length of e in a chunk.
func entryLen(e entry) int {
	return 1 + uvarintLen(len(e.key)) + len(e.key) + uvarintLen(len(e.value)) + len(e.value)
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

func decodeChunk(b []byte) ([]entry, error) {
	var out []entry
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		if op != 1 && op != 2 {
			return nil, fmt.Errorf("bad op %d", op)
		}
		var parts [2][]byte
		for i := range parts {
			n, w := binary.Uvarint(b)
			if w <= 0 || uint64(len(b)-w) < n {
				return nil, fmt.Errorf("truncated entry")
			}
			parts[i] = b[w : w+int(n)]
			b = b[w+int(n):]
		}
		out = append(out, entry{key: parts[0], value: parts[1], del: op == 2})
	}
	return out, nil
}
