package badger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/eventring"
)

// Store is the Badger implementation of state.Store.
type Store struct {
	dir  string
	opts Options
	db   *badgerdb.DB
	lock *dirLock

	// life is held shared by every call for its duration and exclusively
	// by Close, so that Close waits for in-flight calls and later calls see
	// closed.
	life   sync.RWMutex
	closed bool

	// gate makes split batches atomic for readers: readers take their
	// snapshot under RLock, and a batch that needs several transactions
	// holds Lock while it moves from staging into place.
	gate sync.RWMutex

	// broken is set when a write failed in a way that may leave in-memory
	// state out of step with the disk; every later call fails with it and
	// reopening the store repairs it.
	broken atomic.Pointer[state.Error]

	reqs       chan *request
	w          *writer
	writerStop context.CancelFunc
	writerDone chan struct{}

	hub    *eventring.Ring
	oldest atomic.Uint64 // oldest retained event

	maxBytes   int64 // per Badger transaction
	maxEntries int64 // per Badger transaction
	maxValue   int64 // per object or run

	// ctx is cancelled first by Close: it stops background loops and
	// watchers, which bg counts; watches refuses new watchers once Close
	// began, so that none starts after Close waited.
	ctx     context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	watches eventring.Watches

	compactMu sync.Mutex

	closeOnce sync.Once
	closeErr  error

	// hook, when set by tests, is called at named points of a split commit
	// and of recovery, so that a test can crash the process exactly there.
	hook func(point string)

	stats Stats

	// decoded keeps decodings for shared readers (decoded.go).
	decoded decodedCache
}

// Stats counts what the store did, for tests and monitoring.
type Stats struct {
	// Groups is how many group commits ran; Txns how many Badger
	// transactions they committed; Batches how many Apply calls succeeded;
	// Splits how many batches needed several transactions.
	Groups, Txns, Batches, Splits atomic.Uint64
	// Compacted counts events removed by retention; GCRuns counts value-log
	// GC passes.
	Compacted, GCRuns atomic.Uint64
	// Finished and Discarded count split batches that Open found
	// interrupted by a crash and completed (committed), or whose chunks
	// it removed (no commit record: not committed, or already in place).
	Finished, Discarded atomic.Uint64
}

var _ state.Store = (*Store)(nil)

// Open opens (creating it if needed) the state directory dir.
//
// It fails with ECONFLICT, naming the directory, when another process (or
// another Store in this one) has it open, and with EINTERNAL, naming the
// directory and what is wrong, when the directory is damaged; it does not
// panic on damaged files. Opening replays a batch that a crash interrupted
// after it was committed, and discards one interrupted before.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	return open(ctx, dir, opts, nil)
}

func open(ctx context.Context, dir string, opts Options, hook func(string)) (_ *Store, err error) {
	opts = opts.withDefaults()
	if dir == "" {
		return nil, state.Errorf(state.EINVALID, "state directory not set")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, state.Errorf(state.EINVALID, "state directory %q: %v", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, state.Errorf(state.EINTERNAL, "create state directory %s: %v", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	if err := checkDir(dir, opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := openBadger(dir, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:        dir,
		opts:       opts,
		db:         db,
		lock:       lock,
		hook:       hook,
		reqs:       make(chan *request, opts.MaxGroup),
		writerDone: make(chan struct{}),
	}
	s.maxBytes = db.MaxBatchSize() / 2
	if opts.MaxTxnBytes > 0 && opts.MaxTxnBytes < s.maxBytes {
		s.maxBytes = opts.MaxTxnBytes
	}
	s.maxEntries = db.MaxBatchCount() / 2
	s.maxValue = maxValue
	if opts.MaxTxnBytes > 0 {
		s.maxValue = min(maxValue, s.maxBytes/2)
	}
	c, err := s.load(ctx)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.hub = eventring.New(opts.WatchBuffer, c.NextSeq)
	s.w = &writer{s: s, next: c, committed: c}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	wctx, wstop := context.WithCancel(context.Background())
	s.writerStop = wstop
	go func() {
		defer close(s.writerDone)
		s.w.run(wctx)
	}()
	s.startBackground()
	return s, nil
}

// openBadger opens the database, turning a panic inside Badger into an error
// and its lock error into ours.
func openBadger(dir string, opts Options) (db *badgerdb.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, damaged(dir, "badger panicked while opening: %s", firstLine(fmt.Sprint(r)))
		}
	}()
	db, err = badgerdb.Open(opts.badgerOptions(dir))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, state.Errorf(state.ECONFLICT, "state directory %s is in use by another process", dir)
		}
		return nil, damaged(dir, "%s", firstLine(err.Error()))
	}
	return db, nil
}

// damaged returns the error for a directory Open cannot use as it is. The
// message points at the recovery procedure, since the operator reading it has
// a server that does not start.
func damaged(dir, format string, args ...any) error {
	return state.Errorf(state.EINTERNAL,
		"state directory %s is damaged: %s (see \"Recovery\" in the state/badger README)",
		dir, fmt.Sprintf(format, args...))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// load checks the format marker, finishes or discards an interrupted split
// batch and reads the counters.
func (s *Store) load(ctx context.Context) (counters, error) {
	if err := s.checkFormat(); err != nil {
		return counters{}, err
	}
	if err := s.recoverSplit(ctx); err != nil {
		return counters{}, err
	}
	var c counters
	err := s.db.View(func(txn *badgerdb.Txn) error {
		c = counters{NextSeq: 1, NextRV: 1}
		if v, ok, err := get(txn, []byte(keyCounters)); err != nil {
			return err
		} else if ok {
			if c, ok = decodeCounters(v); !ok {
				return damaged(s.dir, "counters record is malformed")
			}
		}
		s.oldest.Store(1)
		if v, ok, err := get(txn, []byte(keyOldest)); err != nil {
			return err
		} else if ok && len(v) == 8 {
			s.oldest.Store(binary.BigEndian.Uint64(v))
		}
		// The counters are written with every change, so an event at or
		// past NextSeq means the directory lost writes it acknowledged.
		last, ok, err := lastEventSeq(txn)
		if err != nil {
			return err
		}
		if ok && last >= c.NextSeq {
			return damaged(s.dir, "event %d is newer than the sequence counter (%d)", last, c.NextSeq)
		}
		return nil
	})
	if err != nil {
		return counters{}, wrapInternal(err, "read counters in %s", s.dir)
	}
	return c, nil
}

// checkFormat makes sure the directory is ours and initialises a new one.
// A sidecar file records that the directory was initialised, so that a
// directory whose data Badger no longer finds is reported as damaged instead
// of silently starting empty; tables that checkDir set aside (now or on an
// earlier start) then probably hold the missing data.
func (s *Store) checkFormat() error {
	marker := filepath.Join(s.dir, markerFile)
	_, statErr := os.Stat(marker)
	hasMarker := statErr == nil
	var format []byte
	var empty bool
	err := s.db.View(func(txn *badgerdb.Txn) error {
		v, ok, err := get(txn, []byte(keyFormat))
		if err != nil {
			return err
		}
		if ok {
			format = v
			return nil
		}
		it := txn.NewIterator(badgerdb.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	if err != nil {
		return damaged(s.dir, "read format marker: %v", err)
	}
	switch {
	case upgradable(string(format)):
		// Upgrade: the records are JSON, which this format reads too.
		err := s.db.Update(func(txn *badgerdb.Txn) error {
			return txn.Set([]byte(keyFormat), []byte(formatVersion))
		})
		if err != nil {
			return wrapInternal(err, "upgrade %s from %s", s.dir, format)
		}
		if err := writeFileSync(marker, []byte(formatVersion+"\n")); err != nil {
			return state.Errorf(state.EINTERNAL, "upgrade %s from %s: %v", s.dir, format, err)
		}
		s.opts.Logger.Info("state directory upgraded", "dir", s.dir, "from", string(format), "to", formatVersion)
		return nil
	case format != nil && string(format) != formatVersion:
		return state.Errorf(state.EINVALID, "state directory %s has format %q; this server reads %q", s.dir, format, formatVersion)
	case format == nil && hasMarker && len(listOrphans(s.dir)) > 0:
		return damaged(s.dir, "the database has lost its data (format record missing); the MANIFEST does not list table files %s, now in %s",
			strings.Join(listOrphans(s.dir), ", "), filepath.Join(s.dir, orphanDir))
	case format == nil && hasMarker:
		return damaged(s.dir, "the database has lost its data (format record missing)")
	case format == nil && !empty:
		return state.Errorf(state.EINVALID, "directory %s holds a Badger database that is not a tinkops state directory", s.dir)
	case format == nil:
		err := s.db.Update(func(txn *badgerdb.Txn) error {
			return txn.Set([]byte(keyFormat), []byte(formatVersion))
		})
		if err != nil {
			return wrapInternal(err, "initialise %s", s.dir)
		}
	}
	if !hasMarker {
		if err := writeFileSync(marker, []byte(formatVersion+"\n")); err != nil {
			return state.Errorf(state.EINTERNAL, "initialise %s: %v", s.dir, err)
		}
	}
	return nil
}

// listOrphans returns the names of the table files in orphanDir.
func listOrphans(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, orphanDir))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// markerFile is the sidecar written once a directory is initialised.
const markerFile = "TINKOPS"

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Store) startBackground() {
	if s.opts.GCInterval > 0 {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.every(s.opts.GCInterval, s.collectGarbage)
		}()
	}
	if s.opts.CompactInterval > 0 {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.every(s.opts.CompactInterval, func() {
				if _, err := s.CompactEvents(s.ctx); err != nil && s.ctx.Err() == nil {
					s.opts.Logger.Error("compact events", "dir", s.dir, "err", err)
				}
			})
		}()
	}
}

// every runs fn every d until Close.
func (s *Store) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// collectGarbage rewrites value-log files that are mostly garbage, until
// Badger finds none worth rewriting.
func (s *Store) collectGarbage() {
	for s.ctx.Err() == nil {
		err := s.db.RunValueLogGC(0.5)
		s.stats.GCRuns.Add(1)
		if err != nil {
			if !errors.Is(err, badgerdb.ErrNoRewrite) && !errors.Is(err, badgerdb.ErrRejected) {
				s.opts.Logger.Error("value log GC", "dir", s.dir, "err", err)
			}
			return
		}
	}
}

// Close implements state.Store. It stops background work and watchers, waits
// for in-flight calls (so every acknowledged write is on disk), closes Badger,
// which flushes its memtable, and releases the directory lock.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.watches.Close()
		s.cancel()
		s.bg.Wait()

		s.life.Lock()
		s.closed = true
		s.life.Unlock()

		// Badger's Close flushes the memtable and waits for its
		// compactors; with its directory removed under it, that wait never
		// ends. Close gives up after a while, so a server on SIGTERM exits
		// within its grace period with an error rather than hang.
		wait := CloseTimeout
		_, statErr := os.Stat(s.dir)
		gone := errors.Is(statErr, os.ErrNotExist)
		if gone {
			wait = time.Second
		}
		done := make(chan error, 1)
		go func() {
			s.writerStop()
			<-s.writerDone
			done <- s.db.Close()
		}()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case err := <-done:
			if err != nil {
				s.closeErr = wrapInternal(err, "close %s", s.dir)
			}
		case <-t.C:
			if gone {
				s.closeErr = state.Errorf(state.EINTERNAL, "close %s: the state directory was removed while the store was open; what was not yet on disk is lost", s.dir)
			} else {
				s.closeErr = state.Errorf(state.EINTERNAL, "close %s: the store did not close within %s", s.dir, wait)
			}
		}
		s.lock.release()
	})
	return s.closeErr
}

// CloseTimeout bounds how long Close waits for Badger to flush and close.
const CloseTimeout = 10 * time.Second

// Dir returns the absolute path of the state directory.
func (s *Store) Dir() string { return s.dir }

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// enter starts a call: it fails if the store is closed or broken and
// otherwise holds life until the returned function runs.
func (s *Store) enter(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, state.Errorf(state.EINTERNAL, "state store %s is closed", s.dir)
	}
	if e := s.broken.Load(); e != nil {
		s.life.RUnlock()
		return nil, e
	}
	return s.life.RUnlock, nil
}

// view runs fn on a read snapshot that never shows part of a batch.
func (s *Store) view(ctx context.Context, fn func(txn *badgerdb.Txn) error) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	return s.snapshot(fn)
}

// snapshot is view for a caller that has already entered. (Entering twice
// could deadlock: a pending Close blocks the second shared lock.)
func (s *Store) snapshot(fn func(txn *badgerdb.Txn) error) error {
	s.gate.RLock()
	txn := s.db.NewTransaction(false)
	s.gate.RUnlock()
	defer txn.Discard()
	return fn(txn)
}

// get returns a copy of the value at key.
func get(txn *badgerdb.Txn, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, err == nil, err
}

func lastEventSeq(txn *badgerdb.Txn) (uint64, bool, error) {
	it := txn.NewIterator(badgerdb.IteratorOptions{Reverse: true, Prefix: []byte(prefixEvent)})
	defer it.Close()
	it.Seek(eventKey(^uint64(0)))
	if !it.Valid() {
		return 0, false, nil
	}
	return eventSeq(it.Item().Key()), true, nil
}

// wrapInternal keeps nil and *state.Error values and wraps anything else as
// EINTERNAL with what was being done.
func wrapInternal(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *state.Error
	if errors.As(err, &se) {
		return err
	}
	return state.Errorf(state.EINTERNAL, "%s: %v", fmt.Sprintf(format, args...), err)
}
