package badger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// redoOptions force a batch of a few hundred kilobytes to be split.
func redoOptions() Options {
	return Options{MaxTxnBytes: 16 << 10, CompactInterval: -1, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)}
}

// redoBatch is n hardware of about 500 bytes each, labelled batch=redo.
func redoBatch(n int) *state.Batch {
	b := &state.Batch{Actor: state.ActorGit, Revision: "main@sha1:redo"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		b.Put(&state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("redo-%03d", i), Labels: map[string]string{"batch": "redo"},
			Annotations: map[string]string{"padding": noise(rng, 500)},
			Spec:        json.RawMessage(`{"interfaces":[{"dhcp":{"mac":"00:00:00:00:00:01"}}]}`), Source: state.SourceGit}, "")
	}
	return b
}

// noise is n letters that do not compress, so that records are stored
// as large as written.
func noise(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.IntN(26))
	}
	return string(b)
}

// stagedKeys counts the keys under prefixStage.
func stagedKeys(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	assert.NoError(t, s.db.View(func(txn *badgerdb.Txn) error {
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(prefixStage)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}))
	return n
}

// redoRecordOf reads the commit record, nil when there is none.
func redoRecordOf(t *testing.T, s *Store) *redoRecord {
	t.Helper()
	var rec *redoRecord
	assert.NoError(t, s.db.View(func(txn *badgerdb.Txn) error {
		v, ok, err := get(txn, []byte(keyRedo))
		if ok {
			rec = &redoRecord{}
			assert.NoError(t, json.Unmarshal(v, rec))
		}
		return err
	}))
	return rec
}

// committedRedo writes redoBatch(n) through a store in a directory of its
// own and returns the batch's chunks and commit record as they were at
// its commit point.
func committedRedo(t *testing.T, n int) ([][]byte, redoRecord) {
	t.Helper()
	dir := t.TempDir()
	var chunks [][]byte
	var rec redoRecord
	var s *Store
	s, err := open(context.Background(), dir, redoOptions(), func(point string) {
		// On the store's writer goroutine: failures are reported, not
		// fatal, which would stop the writer.
		if r := redoRecordOf(t, s); point == "split:marked" && assert.NotNil(t, r) {
			rec = *r
			var err error
			chunks, err = s.readRedo(rec)
			assert.NoError(t, err)
		}
	})
	require.NoError(t, err)
	_, err = s.Apply(context.Background(), redoBatch(n))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NotEmpty(t, chunks)
	return chunks, rec
}

// TestRedoOutsideBadger: a split batch's chunks go to the REDO file, not
// into Badger (whose value log stays mapped: a fleet's first sync held
// 21 MiB of the server's RSS there at 10,000 machines). At the commit
// point the record names the file with its size and checksum; once the
// batch is in place both are gone.
func TestRedoOutsideBadger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var s *Store
	seen := map[string]bool{}
	// The hook runs on the store's writer goroutine: failures are
	// reported, not fatal, which would stop the writer.
	s, err := open(ctx, dir, redoOptions(), func(point string) {
		switch point {
		case "split:staged":
			seen[point] = true
			fi, err := os.Stat(filepath.Join(dir, redoFile))
			if assert.NoError(t, err, "the chunks are in the file before the commit record") {
				assert.Greater(t, fi.Size(), int64(60*500), "the file holds the batch")
			}
			assert.Nil(t, redoRecordOf(t, s), "not committed yet")
		case "split:marked":
			seen[point] = true
			rec := redoRecordOf(t, s)
			fi, err := os.Stat(filepath.Join(dir, redoFile))
			if assert.NotNil(t, rec) && assert.NoError(t, err) {
				assert.Equal(t, redoFile, rec.File)
				assert.Equal(t, fi.Size(), rec.Size)
				assert.Greater(t, rec.Chunks, 1)
			}
			assert.Zero(t, stagedKeys(t, s), "nothing is staged in Badger")
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Apply(ctx, redoBatch(60))
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"split:staged": true, "split:marked": true}, seen)
	require.Equal(t, uint64(1), s.Stats().Splits.Load())
	require.Nil(t, redoRecordOf(t, s))
	_, err = os.Stat(filepath.Join(dir, redoFile))
	require.ErrorIs(t, err, fs.ErrNotExist)
	page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	require.Len(t, page.Objects, 60)
}

// reopen opens dir, as a server does after a crash, and returns the store
// or Open's error.
func reopen(t *testing.T, dir string) (*Store, error) {
	t.Helper()
	s, err := open(context.Background(), dir, redoOptions(), nil)
	if err == nil {
		t.Cleanup(func() { require.NoError(t, s.Close()) })
	}
	return s, err
}

// emptyStore creates a store in a new directory and closes it, returning
// the directory and a function that writes into its Badger database
// directly, as a crash would have left it.
func emptyStore(t *testing.T) (string, func(func(*badgerdb.Txn) error)) {
	t.Helper()
	dir := t.TempDir()
	s, err := open(context.Background(), dir, redoOptions(), nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return dir, func(f func(*badgerdb.Txn) error) {
		db, err := badgerdb.Open(redoOptions().badgerOptions(dir))
		require.NoError(t, err)
		require.NoError(t, db.Update(f))
		require.NoError(t, db.Close())
	}
}

// TestRecoverStagedInBadger: a directory written by a version that staged
// a split batch's chunks in Badger, left by a crash inside the batch: Open
// finishes a committed batch from those chunks, discards an uncommitted
// one, and leaves no staged key behind either way.
func TestRecoverStagedInBadger(t *testing.T) {
	chunks, _ := committedRedo(t, 60)
	stage := func(txn *badgerdb.Txn) error {
		for i, c := range chunks {
			if err := txn.Set(stageKey(i), c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprintf("committed=%t", committed), func(t *testing.T) {
			dir, write := emptyStore(t)
			write(func(txn *badgerdb.Txn) error {
				if err := stage(txn); err != nil || !committed {
					return err
				}
				return txn.Set([]byte(keyRedo), fmt.Appendf(nil, `{"chunks":%d}`, len(chunks)))
			})
			s, err := reopen(t, dir)
			require.NoError(t, err)
			page, err := s.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
			require.NoError(t, err)
			if committed {
				require.Len(t, page.Objects, 60)
				require.Equal(t, uint64(1), s.Stats().Finished.Load())
			} else {
				require.Empty(t, page.Objects)
				require.Equal(t, uint64(1), s.Stats().Discarded.Load())
			}
			require.Zero(t, stagedKeys(t, s))
			require.Nil(t, redoRecordOf(t, s))
		})
	}
}

// redoBytes is the REDO file of chunks.
func redoBytes(chunks [][]byte) []byte {
	b := []byte(redoMagic)
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// recordOf is the commit record of a REDO file holding chunks chunks.
func recordOf(file []byte, chunks int) redoRecord {
	return redoRecord{Chunks: chunks, File: redoFile, Size: int64(len(file)), CRC: crc32.Checksum(file, castagnoli)}
}

// TestRedoFileDamaged: a commit record whose file is missing, cut short,
// altered or not of this format makes Open refuse the directory, naming
// the file, instead of applying part of a batch; a file without a record
// (a crash before the commit point) is removed.
func TestRedoFileDamaged(t *testing.T) {
	chunks, rec := committedRedo(t, 60)
	require.Greater(t, len(chunks), 2)
	file := redoBytes(chunks)
	require.Equal(t, rec, recordOf(file, len(chunks)), "the file is the magic and the length-prefixed chunks")
	two := redoBytes(chunks[:2])
	other := append([]byte("tinkops-redo/9\n"), file[len(redoMagic):]...)
	record := func(r redoRecord) func(*badgerdb.Txn) error {
		return func(txn *badgerdb.Txn) error {
			v, _ := json.Marshal(r)
			return txn.Set([]byte(keyRedo), v)
		}
	}
	for _, tt := range []struct {
		name, want string
		file       []byte
		rec        redoRecord
	}{
		{"missing", "REDO, the chunks of a committed large batch, is missing", nil, rec},
		{"short", "REDO holds", file[:len(file)-10], rec},
		{"altered", "REDO holds", append(file[:len(file)-1:len(file)-1], file[len(file)-1]^1), rec},
		{"chunks", "REDO holds 2 chunks, its commit record says 3", two, recordOf(two, 3)},
		{"magic", "REDO does not start with", other, recordOf(other, rec.Chunks)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, write := emptyStore(t)
			if tt.file != nil {
				require.NoError(t, os.WriteFile(filepath.Join(dir, redoFile), tt.file, 0o600))
			}
			write(record(tt.rec))
			_, err := reopen(t, dir)
			require.Error(t, err)
			require.Equal(t, state.EINTERNAL, state.ErrorCode(err))
			require.Contains(t, err.Error(), tt.want)
			require.Contains(t, err.Error(), "is damaged")
		})
	}
	t.Run("uncommitted", func(t *testing.T) {
		dir, _ := emptyStore(t)
		require.NoError(t, os.WriteFile(filepath.Join(dir, redoFile), file, 0o600))
		s, err := reopen(t, dir)
		require.NoError(t, err)
		require.Equal(t, uint64(1), s.Stats().Discarded.Load())
		_, err = os.Stat(filepath.Join(dir, redoFile))
		require.ErrorIs(t, err, fs.ErrNotExist)
		page, err := s.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Empty(t, page.Objects)
	})
}
