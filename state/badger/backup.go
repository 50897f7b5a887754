package badger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"

	"github.com/tinkops/tinkops/state"
)

// Backups.
//
// A backup is one file (or stream) that Restore turns back into a state
// directory:
//
//	"tinkops-backup\n"                    magic, so that any other file is refused at once
//	<header JSON> "\n"                    BackupInfo: format, time, counts, last event seq
//	frames, each:
//	  u32 length n (1..maxFrame) | u32 CRC-32C of the payload | n bytes payload
//	u32 0 | SHA-256 of every byte before this end marker
//
// The frames' payloads, concatenated, are Badger's backup stream (what
// badger.DB.Backup writes and badger.DB.Load reads: u64 little-endian length
// and a protobuf KVList, repeated). Badger's stream has no checksums and no
// end, so a copy cut short at a record boundary would load as a smaller,
// valid-looking database, and a flipped bit in a length would make Load
// allocate whatever it says. The frames catch both before Load sees a byte:
// each frame is checked on its own, and only the end marker with the right
// digest makes a backup complete.
//
// Consistency. Badger's own DB.Backup cannot be used on a live store: its
// Stream reads with one transaction per goroutine, each opened at its own
// time, and NewStreamAt needs Badger's managed mode, which the store does not
// use. So Backup writes the same stream itself from one read transaction,
// opened under gate like every reader's (see snapshot), which gives a single
// point in commit order that never falls inside a split batch.
//
// Split batches. The staging area (x/) and the commit record (m/redo) are
// left out of the backup. Such a snapshot may hold a split batch's staged
// chunks, and even its commit record if the writer is between committing and
// taking gate, but none of that batch is in place for readers yet, and its
// caller has not been acknowledged. Leaving them out makes the restored store
// exactly what readers saw at that point: the batch is wholly absent, as
// after a crash before its commit point, when Open discards staged chunks.
// (Copying them instead would make Open on the restored directory finish the
// batch, which is also all-or-nothing, but then the restored store would hold
// more than the backup's header and any reader at that time said.)

// BackupInfo is the header of a backup: what it holds, so that an operator
// (and Restore, which checks the restored directory against it) knows what a
// file contains without restoring it. Bytes is not part of the header; it is
// the size of the backup written or read.
type BackupInfo struct {
	// Version is the layout of the backup file.
	Version int `json:"version"`
	// StoreFormat is the state directory layout the data is in; Restore
	// refuses a format this version does not read.
	StoreFormat string `json:"storeFormat"`
	// Created is when the snapshot was taken (the store's clock).
	Created time.Time `json:"created"`
	// Objects, Runs and Events count what the snapshot holds.
	Objects int `json:"objects"`
	Runs    int `json:"runs"`
	Events  int `json:"events"`
	// FirstEventSeq and LastEventSeq are the oldest and newest events
	// retained; 0 when there are none. A restored store continues with
	// the sequence after the one its counters record, never reusing one.
	FirstEventSeq uint64 `json:"firstEventSeq,omitempty"`
	LastEventSeq  uint64 `json:"lastEventSeq,omitempty"`
	// Keys counts every key in the stream (the above plus the store's
	// metadata), for the check after a restore.
	Keys int `json:"keys"`
	// Bytes is the size of the backup; not in the header.
	Bytes int64 `json:"-"`
}

// Backup writes a consistent backup of the open store to w while the store
// keeps serving, so that a backup need not stop the server that has it open:
// readers and writers go on, and the backup shows the store as one reader
// saw it at one instant, never part of a batch (see the notes at the top of
// this file). It stops with ctx's error when ctx ends and with EINTERNAL when
// the store closes; what it wrote by then is not a backup that Restore
// accepts. Errors other than the store's (ctx's, w's) come back wrapped with
// the store's directory; errors.Is still finds them.
func (s *Store) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	var info BackupInfo
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		var err error
		if info, err = survey(ctx, txn); err != nil {
			return err
		}
		info.Created = s.opts.Now().UTC()
		fw, err := startBackup(w, info)
		if err != nil {
			return err
		}
		if err := s.streamKeys(ctx, txn, fw); err != nil {
			return err
		}
		if err := s.stopped(ctx); err != nil {
			return err
		}
		if err := fw.finish(); err != nil {
			return err
		}
		info.Bytes = fw.n
		return nil
	})
	if err != nil {
		var se *state.Error
		if errors.As(err, &se) {
			return BackupInfo{}, err
		}
		return BackupInfo{}, fmt.Errorf("back up %s: %w", s.dir, err)
	}
	return info, nil
}

// BackupDir backs up the state directory dir without a server: it opens the
// store (which fails with ECONFLICT, naming dir, while a server holds it),
// writes the backup and closes the store. Unlike Open it never creates a
// store, so that a mistyped directory is an error instead of an empty backup.
func BackupDir(ctx context.Context, dir string, w io.Writer, opts Options) (BackupInfo, error) {
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		if _, derr := os.Stat(dir); derr != nil {
			return BackupInfo{}, state.Errorf(state.ENOTFOUND, "state directory %s does not exist", dir)
		}
		return BackupInfo{}, state.Errorf(state.EINVALID, "%s is not a tinkops state directory (it has no %s file)", dir, markerFile)
	}
	// Nothing should change the directory while it is copied but the
	// backup itself.
	opts.CompactInterval, opts.GCInterval = -1, -1
	s, err := Open(ctx, dir, opts)
	if err != nil {
		return BackupInfo{}, err
	}
	info, err := s.Backup(ctx, w)
	if cerr := s.Close(); err == nil && cerr != nil {
		return BackupInfo{}, cerr
	}
	return info, err
}

// stopped returns ctx's error, or EINTERNAL once Close has begun: a backup
// holds the store open, and Close should not wait for all of it.
func (s *Store) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.ctx.Err() != nil {
		return state.Errorf(state.EINTERNAL, "state store %s is closing; the backup was stopped", s.dir)
	}
	return nil
}

// survey counts what txn holds, for the header. It reads keys only.
func survey(ctx context.Context, txn *badgerdb.Txn) (BackupInfo, error) {
	info := BackupInfo{Version: backupVersion}
	it := txn.NewIterator(badgerdb.IteratorOptions{})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return BackupInfo{}, ctx.Err()
		}
		key := it.Item().Key()
		if !backedUp(key) {
			continue
		}
		info.Keys++
		switch {
		case bytes.HasPrefix(key, []byte(prefixObject)):
			info.Objects++
		case bytes.HasPrefix(key, []byte(prefixRun)):
			info.Runs++
		case bytes.HasPrefix(key, []byte(prefixEvent)) && len(key) == len(prefixEvent)+8:
			seq := eventSeq(key)
			if info.Events == 0 {
				info.FirstEventSeq = seq
			}
			info.LastEventSeq = seq
			info.Events++
		case string(key) == keyFormat:
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return BackupInfo{}, err
			}
			info.StoreFormat = string(v)
		}
	}
	return info, nil
}

// backedUp reports whether a key belongs in a backup: everything but a split
// batch in progress (see the notes above).
func backedUp(key []byte) bool {
	return !bytes.HasPrefix(key, []byte(prefixStage)) && string(key) != keyRedo
}

// streamKeys writes every key of txn in Badger's backup stream format.
func (s *Store) streamKeys(ctx context.Context, txn *badgerdb.Txn, fw *frameWriter) error {
	it := txn.NewIterator(badgerdb.IteratorOptions{PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	list := &pb.KVList{}
	size := 0
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%256 == 0 {
			if err := s.stopped(ctx); err != nil {
				return err
			}
		}
		item := it.Item()
		if !backedUp(item.Key()) {
			continue
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return wrapInternal(err, "read %q in %s", item.Key(), s.dir)
		}
		list.Kv = append(list.Kv, &pb.KV{
			Key:       item.KeyCopy(nil),
			Value:     v,
			UserMeta:  []byte{item.UserMeta()},
			Version:   item.Version(),
			ExpiresAt: item.ExpiresAt(),
		})
		if size += len(item.Key()) + len(v) + 32; size >= listBytes {
			if err := writeList(fw, list); err != nil {
				return err
			}
			list.Kv, size = list.Kv[:0], 0
		}
	}
	if len(list.Kv) > 0 {
		return writeList(fw, list)
	}
	return nil
}

// writeList writes one record of Badger's backup stream, exactly as
// badger's own writer does, so that DB.Load reads it.
func writeList(w io.Writer, list *pb.KVList) error {
	b, err := proto.Marshal(list)
	if err != nil {
		return state.Errorf(state.EINTERNAL, "encode backup record: %v", err)
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Restore writes the backup read from r into dir, which must be empty or
// absent: Restore never overwrites a state directory, so an operator who
// mistypes a path loses nothing. It returns the backup's header once the
// restored directory opens as a store and holds what the header says.
//
// Restore refuses with EINVALID a stream that is not a tinkops backup, one
// of a newer format, and one that is corrupt or truncated (every frame is
// checksummed and the end marker carries a digest of the whole); with
// ECONFLICT a directory that is not empty (or is in use). On any failure it
// removes what it wrote, leaving dir as it found it.
func Restore(ctx context.Context, dir string, r io.Reader, opts Options) (_ BackupInfo, err error) {
	opts = opts.withDefaults()
	if err := ctx.Err(); err != nil {
		return BackupInfo{}, err
	}
	if dir == "" {
		return BackupInfo{}, state.Errorf(state.EINVALID, "state directory not set")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return BackupInfo{}, state.Errorf(state.EINVALID, "state directory %q: %v", dir, err)
	}
	fr := &frameReader{ctx: ctx, r: bufio.NewReaderSize(r, maxHeader), sum: sha256.New()}
	info, err := fr.header()
	if err != nil {
		return BackupInfo{}, err
	}

	t, err := takeTarget(dir)
	if err != nil {
		return BackupInfo{}, err
	}
	defer func() {
		t.lock.release()
		if err != nil {
			t.clean()
		}
	}()

	got, err := load(ctx, dir, fr, opts)
	if err != nil {
		return BackupInfo{}, err
	}
	if got.Objects != info.Objects || got.Runs != info.Runs || got.Events != info.Events ||
		got.LastEventSeq != info.LastEventSeq || got.Keys != info.Keys {
		return BackupInfo{}, state.Errorf(state.EINVALID,
			"the backup does not hold what its header says: header %d objects, %d runs, %d events (last %d), %d keys; restored %d, %d, %d (last %d), %d",
			info.Objects, info.Runs, info.Events, info.LastEventSeq, info.Keys, got.Objects, got.Runs, got.Events, got.LastEventSeq, got.Keys)
	}

	// Open runs every check a server start runs (tables, format,
	// counters against the event log) and writes the marker file.
	// Open takes the lock itself, so ours goes first. Should another
	// process take the directory in between, Open fails with ECONFLICT and
	// the directory is then that process's: it is not cleaned.
	t.lock.release()
	s, err := Open(ctx, dir, opts)
	if err != nil {
		if state.ErrorCode(err) == state.ECONFLICT {
			t.ours = false
		}
		return BackupInfo{}, err
	}
	if err := s.Close(); err != nil {
		return BackupInfo{}, err
	}
	info.Bytes = fr.n
	return info, nil
}

// load runs Badger's loader on the frames of fr into a new database in dir
// and surveys the result.
func load(ctx context.Context, dir string, fr *frameReader, opts Options) (BackupInfo, error) {
	db, err := openBadger(dir, opts)
	if err != nil {
		return BackupInfo{}, err
	}
	lerr := db.Load(fr, loadPending)
	if fr.err != nil {
		// Load reports our reader's error as its own; ours says what is
		// wrong with the file.
		lerr = fr.err
	}
	if lerr == nil && !fr.done {
		lerr = fr.truncated()
	}
	if lerr == nil {
		lerr = fr.trailing()
	}
	var got BackupInfo
	if lerr == nil {
		lerr = db.View(func(txn *badgerdb.Txn) error {
			var err error
			got, err = survey(ctx, txn)
			return err
		})
	}
	cerr := db.Close()
	if lerr != nil {
		var se *state.Error
		if errors.As(lerr, &se) || errors.Is(lerr, context.Canceled) || errors.Is(lerr, context.DeadlineExceeded) {
			return BackupInfo{}, lerr
		}
		return BackupInfo{}, state.Errorf(state.EINTERNAL, "load the backup into %s: %v", dir, lerr)
	}
	if cerr != nil {
		return BackupInfo{}, state.Errorf(state.EINTERNAL, "close %s after loading the backup: %v", dir, cerr)
	}
	return got, nil
}

// target is the directory a restore writes into.
type target struct {
	dir  string
	lock *dirLock
	// made says Restore created the directory; ours that whatever is in
	// it was put there by Restore, so a failed restore may remove it.
	made, ours bool
}

// takeTarget creates dir if needed, locks it, so that no server starts in it
// during the restore, and refuses it unless it is empty. It looks before it
// locks, so that a directory it refuses does not get a lock file.
func takeTarget(dir string) (*target, error) {
	t := &target{dir: dir}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return nil, state.Errorf(state.EINVALID, "%s is not a directory", dir)
	case err == nil:
		if err := checkEmpty(dir); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, state.Errorf(state.EINTERNAL, "create state directory %s: %v", dir, err)
		}
		t.made = true
	default:
		return nil, state.Errorf(state.EINTERNAL, "restore into %s: %v", dir, err)
	}
	// Should another process get here first, the directory is its own
	// from now on: nothing is cleaned.
	if t.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if err := checkEmpty(dir); err != nil {
		t.lock.release()
		return nil, err
	}
	t.ours = true
	return t, nil
}

// clean undoes a failed restore: it removes the directory if Restore made
// it, else what Restore put into it.
func (t *target) clean() {
	switch {
	case !t.ours:
	case t.made:
		_ = os.RemoveAll(t.dir)
	default:
		entries, _ := os.ReadDir(t.dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(t.dir, e.Name()))
		}
	}
}

// checkEmpty refuses a directory that holds anything but our lock file.
func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return state.Errorf(state.EINTERNAL, "read %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != lockFile {
			names = append(names, e.Name())
		}
	}
	if len(names) > 0 {
		if len(names) > 3 {
			names = append(names[:3], "...")
		}
		return state.Errorf(state.ECONFLICT,
			"%s is not empty (%s): restore only into an empty or new directory; move the old state directory aside first", dir, strings.Join(names, ", "))
	}
	return nil
}
