package badger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// Batches larger than one Badger transaction.
//
// Such a batch is written as a redo log: its key writes go in chunks to a
// file of their own (redoFile, synced), then a record under keyRedo
// commits it, then the chunks are copied into place, the record is
// deleted and the file removed. The keyRedo write is the commit point:
//
//   - a crash before it leaves at most the file, which Open removes: the
//     batch never happened (and was never acknowledged);
//   - a crash after it leaves the record, and Open copies every chunk into
//     place again before serving anything (copying is idempotent, and no
//     later write can exist, since the writer waits for the copy): the
//     batch happened in full.
//
// The chunks are a file rather than Badger values because Badger keeps its
// value log mapped: the pages a fleet's first sync staged there (23 MB at
// 10,000 machines, 230 MB at 100,000) stayed in the server's RSS for its
// life. The commit record stays in Badger, synced with the rest, and names
// the file's size and checksum: a server of a version that staged chunks in
// Badger finds none there and refuses the directory as damaged rather than
// apply half a batch. Directories written by such a version may still hold
// staged chunks (prefixStage); Open finishes or discards them as before.
//
// While the chunks are copied in a running store, the writer holds gate
// exclusively; readers take their snapshots under the shared side, so a
// snapshot is taken either before the first chunk or after the last.

// redoFile holds a split batch's chunks, in the state directory:
//
//	redoMagic | for each chunk: uvarint length | chunk
//
// Its size and CRC-32C are in the commit record.
const (
	redoFile  = "REDO"
	redoMagic = "tinkops-redo/1\n"
)

// redoRecord is the value under keyRedo. File is empty in a record of an
// earlier version, whose chunks are staged under prefixStage.
type redoRecord struct {
	Chunks int    `json:"chunks"`
	File   string `json:"file,omitempty"`
	Size   int64  `json:"size,omitempty"`
	CRC    uint32 `json:"crc32c,omitempty"`
}

func (w *writer) commitSplit(p *prepared) {
	s := w.s
	entries := append(p.entries, entry{key: []byte(keyCounters), value: p.after.encode()})
	p.entries = nil
	chunks := splitEntries(entries, s.maxBytes, s.maxEntries)

	fail := func(err error) {
		w.next = w.committed
		p.req.reply(nil, wrapInternal(err, "write large batch to %s", s.dir))
	}
	rec, err := s.writeRedo(chunks)
	if err != nil {
		_ = removeRedo(s.dir)
		fail(err)
		return
	}
	s.callHook("split:staged")
	v, _ := json.Marshal(rec)
	if err := s.db.Update(func(txn *badgerdb.Txn) error {
		return txn.Set([]byte(keyRedo), v)
	}); err != nil {
		_ = removeRedo(s.dir)
		fail(err)
		return
	}
	s.callHook("split:marked")

	s.gate.Lock()
	err = s.applyChunks(context.Background(), chunks, "split")
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
	s.stats.Txns.Add(uint64(len(chunks) + 2))
	w.acknowledge([]*prepared{p})
}

// writeRedo writes chunks to redoFile, encoded as it goes (a 100,000-
// machine sync's chunks are 230 MB: encoded into memory first, they cost
// a second copy of the batch and most of a second of copying), and syncs
// it and the directory (its name must outlive a crash as surely as the
// record that points at it), returning the commit record that names it.
func (s *Store) writeRedo(chunks [][]entry) (redoRecord, error) {
	rec := redoRecord{Chunks: len(chunks), File: redoFile}
	f, err := os.OpenFile(filepath.Join(s.dir, redoFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return rec, err
	}
	crc := &crcWriter{w: f}
	bw := bufio.NewWriterSize(crc, 1<<20)
	_, _ = bw.WriteString(redoMagic)
	var buf []byte
	for _, c := range chunks {
		buf = binary.AppendUvarint(buf[:0], uint64(chunkLen(c)))
		_, _ = bw.Write(buf)
		for _, e := range c {
			buf = appendChunkEntry(buf[:0], e)
			_, _ = bw.Write(buf)
		}
	}
	err = bw.Flush() // the first write error, if any
	rec.Size, rec.CRC = crc.n, crc.crc
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !s.opts.NoSync {
		err = syncDir(s.dir)
	}
	return rec, err
}

// crcWriter counts and checksums what it writes to w.
type crcWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *crcWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, castagnoli, b[:n])
	return n, err
}

// readRedo reads the chunks rec names, checking them against it.
func (s *Store) readRedo(rec redoRecord) ([][]byte, error) {
	if rec.File != redoFile {
		return nil, damaged(s.dir, "redo record names file %q", rec.File)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, rec.File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, damaged(s.dir, "%s, the chunks of a committed large batch, is missing", rec.File)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != rec.Size || crc32.Checksum(b, castagnoli) != rec.CRC {
		return nil, damaged(s.dir, "%s holds %d bytes with CRC-32C %08x, its commit record says %d bytes with %08x",
			rec.File, len(b), crc32.Checksum(b, castagnoli), rec.Size, rec.CRC)
	}
	rest, ok := bytes.CutPrefix(b, []byte(redoMagic))
	if !ok {
		return nil, damaged(s.dir, "%s does not start with %q", rec.File, strings.TrimSpace(redoMagic))
	}
	chunks := make([][]byte, 0, rec.Chunks)
	for len(rest) > 0 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return nil, damaged(s.dir, "%s: chunk %d is truncated", rec.File, len(chunks))
		}
		chunks = append(chunks, rest[w:w+int(n)])
		rest = rest[w+int(n):]
	}
	if len(chunks) != rec.Chunks {
		return nil, damaged(s.dir, "%s holds %d chunks, its commit record says %d", rec.File, len(chunks), rec.Chunks)
	}
	return chunks, nil
}

// syncDir syncs a directory, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// applyChunks copies chunks into place, one transaction each, in order.
// Up to chunksInFlight transactions are committed at once: Badger writes
// the ones waiting together, with one sync, while the next is built (one
// at a time, each waiting for its own sync, a 100,000-machine sync's 181
// chunks took 3.7 s). A crash part way leaves a prefix of the chunks in
// place, and the redo record: reopening copies them all again. The hook
// sees each chunk once it and every chunk before it are in place.
func (s *Store) applyChunks(ctx context.Context, chunks [][]entry, hookPrefix string) error {
	var inFlight []chan error
	applied := 0
	// wait waits for the oldest transaction in flight.
	wait := func() error {
		err := <-inFlight[0]
		inFlight = inFlight[1:]
		if err != nil {
			return err
		}
		applied++
		s.callHook(fmt.Sprintf("%s:applied:%d", hookPrefix, applied))
		return nil
	}
	// drain waits for every transaction in flight, returning err or
	// else the first of theirs.
	drain := func(err error) error {
		for len(inFlight) > 0 {
			if werr := wait(); err == nil {
				err = werr
			}
		}
		return err
	}
	for _, entries := range chunks {
		if err := ctx.Err(); err != nil {
			return drain(err)
		}
		txn := s.db.NewTransaction(true)
		if err := addEntries(txn, entries); err != nil {
			txn.Discard()
			return drain(err)
		}
		done := make(chan error, 1)
		txn.CommitWith(func(err error) { done <- err })
		inFlight = append(inFlight, done)
		if len(inFlight) == chunksInFlight {
			if err := wait(); err != nil {
				return drain(err)
			}
		}
	}
	return drain(nil)
}

// chunksInFlight bounds the chunk transactions committed at once.
const chunksInFlight = 4

// clearRedo deletes the commit record first (so that a crash from here on
// replays nothing), then the chunks: the file, and the n chunks an
// earlier version staged in Badger, if any (staged > 0, at Open only). A
// file left behind by a crash after the record is gone is removed at Open.
func (s *Store) clearRedo(staged int) error {
	if err := s.db.Update(func(txn *badgerdb.Txn) error {
		return txn.Delete([]byte(keyRedo))
	}); err != nil {
		return err
	}
	if err := removeRedo(s.dir); err != nil {
		return err
	}
	return s.clearStage(staged)
}

// removeRedo removes redoFile if it is there.
func removeRedo(dir string) error {
	if err := os.Remove(filepath.Join(dir, redoFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// clearStage deletes chunks 0..n-1 that an earlier version staged in
// Badger, as many per transaction as fit.
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
		_, statErr := os.Stat(filepath.Join(s.dir, redoFile))
		if staged == 0 && errors.Is(statErr, fs.ErrNotExist) {
			return nil
		}
		// Chunks without a commit record: the batch stopped before its
		// commit (it never happened), or after it was in place and its
		// record deleted (it happened in full). Either way nothing is
		// left to apply.
		s.opts.Logger.Info("removing the chunks of a large batch that has no commit record (interrupted before its commit, or after it was in place)", "dir", s.dir)
		s.stats.Discarded.Add(1)
		if err := removeRedo(s.dir); err != nil {
			return wrapInternal(err, "recover %s", s.dir)
		}
		return wrapInternal(s.clearStage(staged), "recover %s", s.dir)
	}

	s.opts.Logger.Info("finishing a large batch interrupted after it was committed", "dir", s.dir, "chunks", rec.Chunks)
	var stored [][]byte
	if rec.File != "" {
		stored, err = s.readRedo(*rec)
	} else {
		stored, err = s.stagedChunks(rec.Chunks)
	}
	chunks := make([][]entry, len(stored))
	for i := 0; err == nil && i < len(stored); i++ {
		if chunks[i], err = decodeChunk(stored[i]); err != nil {
			err = damaged(s.dir, "staged chunk %d: %v", i, err)
		}
	}
	if err == nil {
		err = s.applyChunks(ctx, chunks, "recover")
	}
	if err == nil {
		err = s.clearRedo(staged)
	}
	if err == nil {
		s.stats.Finished.Add(1)
	}
	return wrapInternal(err, "recover %s", s.dir)
}

// stagedChunks reads n chunks staged in Badger by an earlier version.
func (s *Store) stagedChunks(n int) ([][]byte, error) {
	chunks := make([][]byte, n)
	err := s.db.View(func(txn *badgerdb.Txn) error {
		for i := range chunks {
			v, ok, err := get(txn, stageKey(i))
			if err != nil {
				return err
			}
			if !ok {
				return damaged(s.dir, "staged chunk %d of %d is missing", i, n)
			}
			chunks[i] = v
		}
		return nil
	})
	return chunks, err
}

func (s *Store) callHook(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}

// splitEntries cuts entries into chunks that each fit a transaction of
// at most maxBytes (as Badger counts them, entrySize) and maxEntries. A
// chunk is stored as
//
//	for each entry: op (1: set, 2: delete) | uvarint key length | key | uvarint value length | value
func splitEntries(entries []entry, maxBytes, maxEntries int64) [][]entry {
	var chunks [][]entry
	start, size := 0, int64(0)
	for i, e := range entries {
		need := entrySize(e.key, e.value)
		if i > start && (size+need > maxBytes || int64(i-start+1) > maxEntries) {
			chunks = append(chunks, entries[start:i])
			start, size = i, 0
		}
		size += need
	}
	if start < len(entries) {
		chunks = append(chunks, entries[start:])
	}
	return chunks
}

// appendChunkEntry appends e as a chunk stores it.
func appendChunkEntry(b []byte, e entry) []byte {
	op := byte(1)
	if e.del {
		op = 2
	}
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(e.key)))
	b = append(b, e.key...)
	b = binary.AppendUvarint(b, uint64(len(e.value)))
	return append(b, e.value...)
}

// chunkLen is the stored length of chunk c.
func chunkLen(c []entry) int {
	n := 0
	for _, e := range c {
		n += entryLen(e)
	}
	return n
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
