package badger

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// packTestRun is a run as a fleet's template makes it: 20 actions, each
// with the same image, worker and environment.
func packTestRun(name string) *state.WorkflowRun {
	r := &state.WorkflowRun{Workflow: name, Number: 1, State: state.RunRunning, Template: "ubuntu", Hardware: "node-0001",
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567"}
	for i := range 20 {
		r.Actions = append(r.Actions, state.RunAction{Task: "os-installation", Name: fmt.Sprintf("action-%02d", i),
			Image: "quay.io/tinkerbell/actions/image2disk:v1.0.0", Timeout: 600, Worker: "02:00:00:00:00:01", State: state.RunPending,
			Environment: map[string]string{"DEST_DISK": "/dev/sda", "IMG_URL": "http://10.1.1.1:8080/ubuntu.raw.gz"}})
	}
	return r
}

func TestPackRoundTrip(t *testing.T) {
	var scratch []byte
	for _, record := range [][]byte{
		[]byte(`{}`),
		[]byte(`{"kind":"Hardware","name":"n1"}`),
		[]byte(`{"padding":"` + strings.Repeat("p", 10_000) + `"}`),
		mustJSON(t, packTestRun("wf-1")),
	} {
		stored := pack(&scratch, record)
		if len(record) < packMin {
			require.Equal(t, record, stored, "a small record stays plain JSON")
		} else {
			require.Equal(t, byte(packedRecord), stored[0])
			require.Less(t, len(stored), len(record)/4, "a repetitive record packs to under a quarter")
		}
		got, err := unpack(stored)
		require.NoError(t, err)
		require.Equal(t, record, got)
	}
	// Incompressible bytes stay as they are.
	random := make([]byte, 4096)
	_, _ = crand.Read(random)
	random[0] = '{'
	require.Equal(t, random, pack(&scratch, random))

	// Damaged packed records fail to read, and never allocate what they
	// claim.
	stored := pack(&scratch, mustJSON(t, packTestRun("wf-1")))
	_, err := unpack(stored[:len(stored)/2])
	require.Error(t, err)
	_, err = unpack(binary.AppendUvarint([]byte{packedRecord}, 100<<20))
	require.ErrorContains(t, err, "more than any record")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// rawValue reads a key's stored bytes, as they are on disk.
func rawValue(t *testing.T, s *Store, key []byte) []byte {
	t.Helper()
	var v []byte
	require.NoError(t, s.db.View(func(txn *badgerdb.Txn) error {
		var ok bool
		var err error
		v, ok, err = get(txn, key)
		require.True(t, ok, "%q stored", key)
		return err
	}))
	return v
}

// TestRecordsStoredPacked: objects and runs are stored packed and read
// back as written, through every read path (Get, List, the writer's next
// transition, Dump).
func TestRecordsStoredPacked(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{CompactInterval: -1, GCInterval: -1})
	require.NoError(t, err)
	defer s.Close()

	obj := &state.Object{Kind: state.KindHardware, Name: "node-0001", Source: state.SourceGit,
		Annotations: map[string]string{"note": strings.Repeat("rack 7, row 3; ", 40)},
		Spec:        json.RawMessage(`{"interfaces":[{"dhcp":{"mac":"02:00:00:00:00:01"}}]}`)}
	stored, err := s.PutObject(ctx, state.ActorGit, obj)
	require.NoError(t, err)
	run, err := s.PutRun(ctx, state.ActorReconciler, packTestRun("wf-1"))
	require.NoError(t, err)

	rawObj := rawValue(t, s, objectKey(obj.Key()))
	rawRun := rawValue(t, s, runKey(run.Key()))
	require.Equal(t, byte(packedRecord), rawObj[0])
	require.Equal(t, byte(packedRecord), rawRun[0])
	require.Less(t, len(rawRun), len(mustJSON(t, run))/4)

	gotObj, err := s.GetObject(ctx, obj.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, stored), mustJSON(t, gotObj))
	gotRun, err := s.GetRun(ctx, run.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, run), mustJSON(t, gotRun))
	page, err := s.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	require.Len(t, page.Runs, 1)
	require.Equal(t, mustJSON(t, run), mustJSON(t, page.Runs[0]))

	// The next transition, with the writer's cache emptied, reads the
	// packed record it replaces.
	s.w.runs = nil
	next := *gotRun
	next.Actions = append([]state.RunAction(nil), gotRun.Actions...)
	next.Actions[0].State = state.RunRunning
	next.Actions[0].Attempt = 1
	_, err = s.PutRun(ctx, state.Worker("node-0001"), &next)
	require.NoError(t, err)

	var dumped []state.DumpItem
	require.NoError(t, s.Dump(ctx, func(it state.DumpItem) error { dumped = append(dumped, it); return nil }))
	var sawObj, sawRun bool
	for _, it := range dumped {
		if it.Object != nil && it.Object.Name == "node-0001" {
			sawObj = true
			require.Equal(t, obj.Annotations, it.Object.Annotations)
		}
		if it.Run != nil {
			sawRun = true
			require.Equal(t, state.RunRunning, it.Run.Actions[0].State)
		}
	}
	require.True(t, sawObj && sawRun, "dump shows the packed records decoded")

	// Events are packed too, and read back whole, filtered by type or not.
	msg := strings.Repeat("synced main to abc123; ", 30)
	res, err := s.Apply(ctx, &state.Batch{Actor: state.ActorGit, Events: []state.Event{{Type: state.EventSync, Message: msg}}})
	require.NoError(t, err)
	seq := res.Events[0].Seq
	raw := rawValue(t, s, eventKey(seq))
	require.Equal(t, byte(packedRecord), raw[0])
	require.Less(t, len(raw), len(msg)/4)
	for _, types := range [][]state.EventType{nil, {state.EventSync}} {
		evs, err := s.Events(ctx, state.EventQuery{From: seq, Filter: state.EventFilter{Types: types}})
		require.NoError(t, err)
		require.Len(t, evs, 1, "%v", types)
		require.Equal(t, msg, evs[0].Message)
	}
	evs, err := s.Events(ctx, state.EventQuery{From: seq, Filter: state.EventFilter{Types: []state.EventType{state.EventError}}})
	require.NoError(t, err)
	require.Empty(t, evs, "a packed event of another type is skipped")
}

// TestOldFormatsUpgraded: a directory of format 1 (records plain JSON) or
// format 2 (events plain JSON) opens, its records read as they were, and
// its marker says format 3 from then on, so that an older server would
// refuse it rather than misread the packed records written next.
func TestOldFormatsUpgraded(t *testing.T) {
	for _, old := range []string{formatV1, formatV2} {
		t.Run(old, func(t *testing.T) { testUpgrade(t, old) })
	}
}

func testUpgrade(t *testing.T, old string) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{CompactInterval: -1, GCInterval: -1}
	s, err := Open(ctx, dir, opts)
	require.NoError(t, err)
	obj := &state.Object{Kind: state.KindHardware, Name: "old", Source: state.SourceGit,
		Annotations: map[string]string{"note": strings.Repeat("written by an old format; ", 30)}, Spec: json.RawMessage(`{}`)}
	obj, err = s.PutObject(ctx, state.ActorGit, obj)
	require.NoError(t, err)
	run, err := s.PutRun(ctx, state.ActorReconciler, packTestRun("wf-old"))
	require.NoError(t, err)
	res, err := s.Apply(ctx, &state.Batch{Actor: state.ActorGit, Events: []state.Event{{Type: state.EventSync, Message: strings.Repeat("old event; ", 40)}}})
	require.NoError(t, err)
	ev := res.Events[0]
	require.NoError(t, s.Close())

	// Turn it into what the old format wrote: plain JSON records, its marker.
	setRaw(t, dir, opts, map[string][]byte{keyFormat: []byte(old), string(objectKey(obj.Key())): mustJSON(t, obj),
		string(runKey(run.Key())): mustJSON(t, run), string(eventKey(ev.Seq)): mustJSON(t, ev)})
	require.NoError(t, os.WriteFile(filepath.Join(dir, markerFile), []byte(old+"\n"), 0o600))
	s, err = Open(ctx, dir, opts)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, byte('{'), rawValue(t, s, runKey(run.Key()))[0], "the old records are left as they are")
	gotObj, err := s.GetObject(ctx, obj.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, obj), mustJSON(t, gotObj))
	gotRun, err := s.GetRun(ctx, run.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, run), mustJSON(t, gotRun))
	require.Equal(t, byte('{'), rawValue(t, s, eventKey(ev.Seq))[0])
	evs, err := s.Events(ctx, state.EventQuery{From: ev.Seq, Filter: state.EventFilter{Types: []state.EventType{state.EventSync}}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, mustJSON(t, ev), mustJSON(t, evs[0]))
	require.Equal(t, formatVersion, string(rawValue(t, s, []byte(keyFormat))))
	marker, err := os.ReadFile(filepath.Join(dir, markerFile))
	require.NoError(t, err)
	require.Equal(t, formatVersion+"\n", string(marker))

	// A backup of the old format (taken as its server did, from the
	// records as they still are) restores, and is upgraded when opened.
	backup := func(format string) *bytes.Buffer {
		require.NoError(t, s.db.Update(func(txn *badgerdb.Txn) error { return txn.Set([]byte(keyFormat), []byte(format)) }))
		var buf bytes.Buffer
		_, err := s.Backup(ctx, &buf)
		require.NoError(t, err)
		return &buf
	}
	restored := filepath.Join(t.TempDir(), "restored")
	info, err := Restore(ctx, restored, backup(old), opts)
	require.NoError(t, err)
	require.Equal(t, old, info.StoreFormat)
	r, err := Open(ctx, restored, opts)
	require.NoError(t, err)
	gotRun, err = r.GetRun(ctx, run.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, run), mustJSON(t, gotRun))
	require.Equal(t, formatVersion, string(rawValue(t, r, []byte(keyFormat))))
	require.NoError(t, r.Close())

	// A format this version does not know is refused, in a backup and in
	// a directory.
	_, err = Restore(ctx, filepath.Join(t.TempDir(), "restored"), backup("tinkops-state/9"), opts)
	require.ErrorContains(t, err, `the backup holds state format "tinkops-state/9"`)
	backup(formatVersion)

	// Its runs go on, now packed.
	gotRun.Actions[0].State = state.RunRunning
	gotRun.Actions[0].Attempt = 1
	_, err = s.PutRun(ctx, state.Worker("node-0001"), gotRun)
	require.NoError(t, err)
	require.Equal(t, byte(packedRecord), rawValue(t, s, runKey(run.Key()))[0])
	require.NoError(t, s.Close())

	setRaw(t, dir, opts, map[string][]byte{keyFormat: []byte("tinkops-state/9")})
	_, err = Open(ctx, dir, opts)
	require.ErrorContains(t, err, `has format "tinkops-state/9"; this server reads "tinkops-state/3"`)
}

// setRaw writes keys of a closed state directory as they are, bypassing
// the store.
func setRaw(t *testing.T, dir string, opts Options, kv map[string][]byte) {
	t.Helper()
	db, err := openBadger(dir, opts.withDefaults())
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *badgerdb.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())
}

// TestLoadDirPacks: a store filled by `tink-server migrate` holds its
// records as the writer would have written them.
func TestLoadDirPacks(t *testing.T) {
	ctx := context.Background()
	opts := Options{CompactInterval: -1, GCInterval: -1}
	src, err := Open(ctx, t.TempDir(), opts)
	require.NoError(t, err)
	defer src.Close()
	run, err := src.PutRun(ctx, state.ActorReconciler, packTestRun("wf-1"))
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, LoadDir(ctx, dir, opts, src.Dump))
	s, err := Open(ctx, dir, opts)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, byte(packedRecord), rawValue(t, s, runKey(run.Key()))[0])
	got, err := s.GetRun(ctx, run.Key())
	require.NoError(t, err)
	require.Equal(t, mustJSON(t, run), mustJSON(t, got))
}

// TestChunksRoundTrip: a split batch's chunks, written to the redo file
// and read back, hold every entry in order, each chunk within the byte
// (as Badger counts them) and entry limits.
func TestChunksRoundTrip(t *testing.T) {
	var entries []entry
	for i := range 2000 {
		e := entry{key: []byte(fmt.Sprintf("o/Hardware\x00\x00node-%05d", i))}
		switch {
		case i%7 == 0:
			e.del = true
		case i%5 == 0:
			e.value = bytes.Repeat([]byte{'v'}, 300+i) // lengths of 2 and 3 varint bytes
		default:
			e.value = []byte(strings.Repeat("x", i%130))
		}
		entries = append(entries, e)
	}
	for _, limits := range [][2]int64{{4 << 10, 1000}, {64 << 10, 10}, {1 << 30, 1 << 30}} {
		chunks := splitEntries(entries, limits[0], limits[1])
		s := &Store{dir: t.TempDir()}
		rec, err := s.writeRedo(chunks)
		require.NoError(t, err)
		require.Equal(t, len(chunks), rec.Chunks)
		stored, err := s.readRedo(rec)
		require.NoError(t, err, "the record names the file's size and checksum")
		require.Len(t, stored, len(chunks))
		var got []entry
		for i, c := range stored {
			require.Equal(t, chunkLen(chunks[i]), len(c))
			es, err := decodeChunk(c)
			require.NoError(t, err)
			require.LessOrEqual(t, int64(len(es)), limits[1])
			if len(es) > 1 {
				size := int64(0)
				for _, e := range es {
					size += entrySize(e.key, e.value)
				}
				require.LessOrEqual(t, size, limits[0])
			}
			got = append(got, es...)
		}
		require.Len(t, got, len(entries))
		for i := range entries {
			require.Equal(t, string(entries[i].key), string(got[i].key), "entry %d", i)
			require.Equal(t, entries[i].del, got[i].del, "entry %d", i)
			require.Equal(t, string(entries[i].value), string(got[i].value), "entry %d", i)
		}
	}
}

// TestEncodeEachFirstError: records encoded on several cores fail with
// the error of the lowest failing record, wherever the cores' ranges
// fall, and every record is encoded once when none fails.
func TestEncodeEachFirstError(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	w := &writer{}
	const n = 10 * parallelRecords
	for _, bad := range [][]int{{n - 3}, {3000, n - 3}, {7, 3000, 4000}, {0, 1}} {
		err := w.encodeEach(n, func(i int, scratch *encodeScratch) error {
			if slices.Contains(bad, i) {
				return fmt.Errorf("record %d", i)
			}
			return nil
		})
		require.EqualError(t, err, fmt.Sprintf("record %d", bad[0]))
	}
	for _, size := range []int{parallelRecords - 1, n} {
		seen := make([]atomic.Int32, size)
		require.NoError(t, w.encodeEach(size, func(i int, scratch *encodeScratch) error {
			seen[i].Add(1)
			scratch.pack = append(scratch.pack[:0], 'x')
			return nil
		}))
		for i := range seen {
			require.Equal(t, int32(1), seen[i].Load(), "record %d of %d", i, size)
		}
	}
}
