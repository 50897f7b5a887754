package badger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
	"github.com/tinkops/tinkops/state/storetest"
)

// dump is everything a store shows through state.Store.
type dump struct {
	Objects []*state.Object
	Runs    []*state.WorkflowRun
	Events  []state.Event
	Bounds  state.EventBounds
	Sync    *state.SyncStatus
}

func dumpStore(t *testing.T, s state.Store) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	objs, err := s.ListObjects(ctx, state.ObjectQuery{})
	require.NoError(t, err)
	require.Empty(t, objs.Continue)
	d.Objects = objs.Objects
	runs, err := s.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	require.Empty(t, runs.Continue)
	d.Runs = runs.Runs
	d.Bounds, err = s.EventBounds(ctx)
	require.NoError(t, err)
	if d.Bounds.Latest >= d.Bounds.Oldest {
		d.Events, err = s.Events(ctx, state.EventQuery{Limit: 1 << 30})
		require.NoError(t, err)
	}
	d.Sync, err = s.SyncStatus(ctx)
	require.NoError(t, err)
	return d
}

// fill writes objects of two kinds in two namespaces (some updated, one
// deleted), runs, extra events, a sync status and a split batch, and
// compacts the oldest events away.
func fill(t *testing.T, s *badger.Store, clock *storetest.Clock) {
	t.Helper()
	ctx := context.Background()
	for i := range 20 {
		o := hw(fmt.Sprintf("node-%02d", i), map[string]string{"rack": strconv.Itoa(i % 3)})
		if i%2 == 1 {
			o.Namespace = "tink-system"
		}
		got, err := s.PutObject(ctx, state.ActorGit, o)
		require.NoError(t, err)
		if i%4 == 0 {
			clock.Advance(time.Second)
			got.Annotations = map[string]string{"note": "updated"}
			_, err = s.PutObject(ctx, state.APIUser("alice"), got)
			require.NoError(t, err)
		}
	}
	_, err := s.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindTemplate, Name: "ubuntu", Spec: []byte(`{"data":"version: \"0.1\""}`), Source: state.SourceGit})
	require.NoError(t, err)
	require.NoError(t, s.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindHardware, Name: "node-02"}, 0))
	for i := range 3 {
		run, err := s.PutRun(ctx, state.ActorReconciler, &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%d", i), Number: 1, State: state.RunPending,
			Actions: []state.RunAction{{Task: "os", Name: "stream", Image: "img", State: state.RunPending}}})
		require.NoError(t, err)
		run.State = state.RunRunning
		run.Actions[0].State = state.RunRunning
		_, err = s.PutRun(ctx, state.Worker("node-01"), run)
		require.NoError(t, err)
	}
	_, err = s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler,
		Events: []state.Event{{Type: state.EventBMC, Kind: state.KindHardware, Name: "node-01", Message: "power cycle"}},
		Sync:   &state.SyncStatus{LastAttemptedRevision: "main@sha1:2", LastAppliedRevision: "main@sha1:1", LastSyncAt: clock.Now(), LastDuration: time.Second}})
	require.NoError(t, err)
	_, err = s.Apply(ctx, bigBatch(1, 60, 500))
	require.NoError(t, err)
	require.NotZero(t, s.Stats().Splits.Load(), "the batch was split")
	removed, err := s.CompactEvents(ctx)
	require.NoError(t, err)
	require.NotZero(t, removed, "retention removed the oldest events")
}

// mustRestore restores b into a new directory and opens it.
func mustRestore(t *testing.T, b []byte) (*badger.Store, badger.BackupInfo) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	info, err := badger.Restore(context.Background(), dir, bytes.NewReader(b), badger.Options{})
	require.NoError(t, err)
	return MustOpen(t, dir, badger.Options{}), info
}

// TestBackupRestoreRoundTrip: a restored store shows exactly what the
// original did (objects with their resource versions, runs, events with
// their sequence numbers, retention, sync status), and continues numbering
// events and versions after the original's, never reusing one.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	clock := &storetest.Clock{}
	src := MustOpen(t, t.TempDir(), badger.Options{Now: clock.Now, MaxTxnBytes: 16 << 10, Retention: state.Retention{MaxEvents: 50, MaxAge: -1}})
	fill(t, src, clock)
	want := dumpStore(t, src)
	require.Greater(t, want.Bounds.Oldest, uint64(1))

	var buf bytes.Buffer
	info, err := src.Backup(ctx, &buf)
	require.NoError(t, err)
	require.Equal(t, len(want.Objects), info.Objects)
	require.Equal(t, len(want.Runs), info.Runs)
	require.Equal(t, len(want.Events), info.Events)
	require.Equal(t, want.Bounds.Oldest, info.FirstEventSeq)
	require.Equal(t, want.Bounds.Latest, info.LastEventSeq)
	require.Equal(t, clock.Now(), info.Created)
	require.Equal(t, int64(buf.Len()), info.Bytes)
	require.True(t, bytes.HasPrefix(buf.Bytes(), []byte("tinkops-backup\n{")), "the header is readable with head -2")

	restored, rinfo := mustRestore(t, buf.Bytes())
	info.Bytes = rinfo.Bytes
	require.Equal(t, info, rinfo, "Restore returns the header")
	require.Equal(t, int64(buf.Len()), rinfo.Bytes)
	got := dumpStore(t, restored)
	require.Equal(t, want, got)

	o, err := restored.PutObject(ctx, state.ActorGit, hw("after-restore", nil))
	require.NoError(t, err)
	var maxRV uint64
	for _, ob := range want.Objects {
		maxRV = max(maxRV, ob.ResourceVersion)
	}
	for _, r := range want.Runs {
		maxRV = max(maxRV, r.ResourceVersion)
	}
	require.Greater(t, o.ResourceVersion, maxRV, "resource versions continue")
	evs, err := restored.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, want.Bounds.Latest+1, evs[0].Seq, "event numbering continues")

	// The original is untouched and keeps working.
	require.Equal(t, want, dumpStore(t, src))
	_, err = src.PutObject(ctx, state.ActorGit, hw("after-backup", nil))
	require.NoError(t, err)
}

// TestBackupEmptyStore: a new store backs up and restores too.
func TestBackupEmptyStore(t *testing.T) {
	src := MustOpen(t, t.TempDir(), badger.Options{})
	var buf bytes.Buffer
	info, err := src.Backup(context.Background(), &buf)
	require.NoError(t, err)
	require.Zero(t, info.Objects+info.Runs+info.Events)
	restored, _ := mustRestore(t, buf.Bytes())
	require.Equal(t, dumpStore(t, src), dumpStore(t, restored))
}

// checkConsistent checks a restored store against its own event log: the log
// has no gaps, every object and run is in the state its last event says,
// and every batch of bigBatch is there in full or not at all.
func checkConsistent(t *testing.T, s *badger.Store, info badger.BackupInfo) {
	t.Helper()
	d := dumpStore(t, s)
	require.Equal(t, uint64(1), d.Bounds.Oldest)
	require.Equal(t, info.LastEventSeq, d.Bounds.Latest)
	require.Len(t, d.Events, int(d.Bounds.Latest))
	for i, ev := range d.Events {
		require.Equal(t, uint64(i+1), ev.Seq, "the event log has no gaps")
	}

	type last struct {
		rv      uint64
		deleted bool
	}
	objects := map[state.ObjectKey]last{}
	runs := map[state.RunKey]uint64{}
	for _, ev := range d.Events {
		switch ev.Type {
		case state.EventCreated, state.EventUpdated, state.EventDeleted:
			objects[state.ObjectKey{Kind: ev.Kind, Namespace: ev.Namespace, Name: ev.Name}] = last{ev.ResourceVersion, ev.Type == state.EventDeleted}
		case state.EventRunState:
			runs[state.RunKey{Namespace: ev.Namespace, Workflow: ev.Name, Number: ev.Run}] = ev.ResourceVersion
		}
	}
	present := map[state.ObjectKey]bool{}
	batches := map[string]int{}
	for _, o := range d.Objects {
		present[o.Key()] = true
		l, ok := objects[o.Key()]
		require.True(t, ok, "%s has an event", o.Key())
		require.False(t, l.deleted, "%s was deleted by its last event", o.Key())
		require.Equal(t, l.rv, o.ResourceVersion, "%s is as its last event left it", o.Key())
		if b := o.Labels["batch"]; b != "" {
			batches[b]++
		}
	}
	for key, l := range objects {
		require.Equal(t, !l.deleted, present[key], "%s exists as its last event says", key)
	}
	for b, n := range batches {
		size := 0
		for _, o := range d.Objects {
			if o.Labels["batch"] == b {
				size = mustAtoi(t, o.Labels["size"])
				break
			}
		}
		require.Equal(t, size, n, "batch %s is there in full", b)
	}
	require.Len(t, d.Runs, len(runs))
	for _, r := range d.Runs {
		require.Equal(t, runs[r.Key()], r.ResourceVersion, "%s is as its last event left it", r.Key())
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// TestBackupDuringWrites takes backups while writers update objects and
// runs and apply split batches, and checks each restored copy against its
// own event log.
func TestBackupDuringWrites(t *testing.T) {
	ctx := context.Background()
	src := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var writes atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := src.PutObject(ctx, state.ActorGit, hw(fmt.Sprintf("writer-%d", w), nil))
			if err != nil {
				errs <- err
				return
			}
			run, err := src.PutRun(ctx, state.ActorReconciler, &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%d", w), Number: 1, State: state.RunPending})
			if err != nil {
				errs <- err
				return
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o.Annotations = map[string]string{"i": strconv.Itoa(i)}
				if o, err = src.PutObject(ctx, state.ActorGit, o); err != nil {
					errs <- err
					return
				}
				run.Reason = strconv.Itoa(i)
				run.State = []state.RunState{state.RunPending, state.RunRunning}[i%2]
				if run, err = src.PutRun(ctx, state.ActorReconciler, run); err != nil {
					errs <- err
					return
				}
				if i%10 == 0 {
					if err := src.DeleteObject(ctx, state.ActorGit, o.Key(), o.ResourceVersion); err != nil {
						errs <- err
						return
					}
					o.ResourceVersion = 0
					if o, err = src.PutObject(ctx, state.ActorGit, o); err != nil {
						errs <- err
						return
					}
				}
				writes.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := src.Apply(ctx, bigBatch(i, 40, 400)); err != nil {
				errs <- err
				return
			}
		}
	}()

	var backups []badger.BackupInfo
	var files [][]byte
	for len(backups) < 4 {
		start := writes.Load()
		require.Eventually(t, func() bool { return writes.Load() > start+20 }, 10*time.Second, time.Millisecond)
		var buf bytes.Buffer
		info, err := src.Backup(ctx, &buf)
		require.NoError(t, err)
		backups = append(backups, info)
		files = append(files, buf.Bytes())
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NotZero(t, src.Stats().Splits.Load())
	bounds, err := src.EventBounds(ctx)
	require.NoError(t, err)
	require.Greater(t, bounds.Latest, backups[len(backups)-1].LastEventSeq, "writes went on after the last backup")

	for i, b := range files {
		restored, info := mustRestore(t, b)
		require.Equal(t, backups[i].LastEventSeq, info.LastEventSeq)
		checkConsistent(t, restored, info)
	}
}

// TestBackupSplitBatch takes backups at the points of a split commit: with
// the batch staged, with its commit record written, and while it is being
// copied into place. The first two restore without the batch, the last
// with all of it; each restored store continues numbering from its own
// counters.
func TestBackupSplitBatch(t *testing.T) {
	ctx := context.Background()
	var src *badger.Store
	backups := map[string]*bytes.Buffer{}
	var during sync.WaitGroup
	// The hook runs on the store's writer goroutine, where a failing
	// require would stop the writer: errors are collected instead.
	errs := make(chan error, 3)
	hook := func(point string) {
		switch point {
		case "split:staged", "split:marked":
			// The writer does not hold the gate here: back up now.
			buf := &bytes.Buffer{}
			_, err := src.Backup(ctx, buf)
			errs <- err
			backups[point] = buf
		case "split:applied:1":
			// The writer holds the gate until the batch is in place: a
			// backup waits for it.
			buf := &bytes.Buffer{}
			backups[point] = buf
			during.Add(1)
			go func() {
				defer during.Done()
				_, err := src.Backup(ctx, buf)
				errs <- err
			}()
		}
	}
	src, err := badger.OpenWithHook(ctx, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10, CompactInterval: -1, GCInterval: -1}, hook)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	_, err = src.PutObject(ctx, state.ActorGit, hw("before", nil))
	require.NoError(t, err)
	_, err = src.Apply(ctx, bigBatch(7, 60, 500))
	require.NoError(t, err)
	during.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, backups, 3)

	for point, size := range map[string]int{"split:staged": 0, "split:marked": 0, "split:applied:1": 60} {
		t.Run(point, func(t *testing.T) {
			restored, info := mustRestore(t, backups[point].Bytes())
			checkConsistent(t, restored, info)
			page, err := restored.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Selector: mustSelector(t, "batch=7")})
			require.NoError(t, err)
			require.Len(t, page.Objects, size)
			next, err := restored.PutObject(ctx, state.ActorGit, hw("after", nil))
			require.NoError(t, err)
			evs, err := restored.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
			require.NoError(t, err)
			require.Equal(t, info.LastEventSeq+1, evs[0].Seq)
			require.Equal(t, evs[0].ResourceVersion, next.ResourceVersion)
		})
	}
}

func mustSelector(t *testing.T, s string) state.Selector {
	t.Helper()
	sel, err := state.ParseSelector(s)
	require.NoError(t, err)
	return sel
}

// TestRestoreRefusesNonEmptyDir: Restore never writes into a directory
// that holds anything, a live store least of all, and leaves it as it was.
func TestRestoreRefusesNonEmptyDir(t *testing.T) {
	ctx := context.Background()
	src := MustOpen(t, t.TempDir(), badger.Options{})
	_, err := src.PutObject(ctx, state.ActorGit, hw("node-01", nil))
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = src.Backup(ctx, &buf)
	require.NoError(t, err)

	t.Run("ErrFiles", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o600))
		_, err := badger.Restore(ctx, dir, bytes.NewReader(buf.Bytes()), badger.Options{})
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), dir)
		require.Contains(t, err.Error(), "not empty")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "nothing added, nothing removed")
	})
	t.Run("ErrLiveStore", func(t *testing.T) {
		dir := t.TempDir()
		live := MustOpen(t, dir, badger.Options{})
		_, err := badger.Restore(ctx, dir, bytes.NewReader(buf.Bytes()), badger.Options{})
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), dir)
		_, err = live.PutObject(ctx, state.ActorGit, hw("still-works", nil))
		require.NoError(t, err)
		_, err = live.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "node-01"})
		require.Equal(t, state.ENOTFOUND, state.ErrorCode(err), "the backup did not land in the live store")
	})
	t.Run("ErrFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(path, nil, 0o600))
		_, err := badger.Restore(ctx, path, bytes.NewReader(buf.Bytes()), badger.Options{})
		require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), path)
	})
	t.Run("OKEmptyDir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := badger.Restore(ctx, dir, bytes.NewReader(buf.Bytes()), badger.Options{})
		require.NoError(t, err)
		s := MustOpen(t, dir, badger.Options{})
		_, err = s.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "node-01"})
		require.NoError(t, err)
	})
}

// TestRestoreRefusesDamagedBackup: a file that is not a backup, a cut-short
// copy (also one cut at a record boundary, which Badger's own stream format
// would load without complaint) and flipped bits are refused with EINVALID
// and a message that says which, and leave no directory behind.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	ctx := context.Background()
	src := MustOpen(t, t.TempDir(), badger.Options{})
	for i := range 400 {
		o := hw(fmt.Sprintf("node-%03d", i), nil)
		o.Annotations = map[string]string{"padding": incompressible(4000)}
		_, err := src.PutObject(ctx, state.ActorGit, o)
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	_, err := src.Backup(ctx, &buf)
	require.NoError(t, err)
	good := buf.Bytes()
	require.Greater(t, len(good), 1<<20, "more than one frame")
	headerEnd := bytes.IndexByte(good[len("tinkops-backup\n"):], '\n') + len("tinkops-backup\n") + 1

	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x40
		return b
	}
	newer := bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"ErrNotABackup", []byte("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\n"), "not a tinkops backup"},
		{"ErrEmpty", nil, "not a tinkops backup"},
		{"ErrBadgerBackup", good[headerEnd:], "not a tinkops backup"},
		{"ErrNewerFormat", newer, "newer tinkops"},
		{"ErrTruncatedHeader", good[:headerEnd-5], "truncated"},
		{"ErrTruncatedAfterHeader", good[:headerEnd], "truncated"},
		{"ErrTruncatedInFrame", good[:headerEnd+1000], "truncated"},
		{"ErrTruncatedAtFrameEnd", good[:len(good)-36], "truncated"},
		{"ErrTruncatedInEndMarker", good[:len(good)-1], "truncated"},
		{"ErrFlippedPayload", flip(headerEnd + 5000), "checksum"},
		{"ErrFlippedSecondFrame", flip(len(good) - 100), "checksum"},
		{"ErrFlippedFrameLength", flip(headerEnd), "corrupt"},
		{"ErrFlippedHeader", flip(headerEnd - 10), "corrupt"},
		{"ErrFlippedDigest", flip(len(good) - 1), "digest"},
		{"ErrTrailingData", append(bytes.Clone(good), "more"...), "after its end marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "restored")
			_, err := badger.Restore(ctx, dir, bytes.NewReader(tc.data), badger.Options{})
			require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
			require.Contains(t, err.Error(), tc.want)
			_, statErr := os.Stat(dir)
			require.True(t, errors.Is(statErr, os.ErrNotExist), "the failed restore left %s behind", dir)

			// VerifyBackup finds the same damage without restoring.
			_, err = badger.VerifyBackup(ctx, bytes.NewReader(tc.data))
			require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
			require.Contains(t, err.Error(), tc.want)

			// Into an existing empty directory: it stays empty.
			empty := t.TempDir()
			_, err = badger.Restore(ctx, empty, bytes.NewReader(tc.data), badger.Options{})
			require.Error(t, err)
			entries, err := os.ReadDir(empty)
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}

	// The untouched file still verifies and restores, so the cases above
	// failed for their damage alone.
	info, err := badger.VerifyBackup(ctx, bytes.NewReader(good))
	require.NoError(t, err)
	require.Equal(t, 400, info.Objects)
	require.Equal(t, int64(len(good)), info.Bytes)
	mustRestore(t, good)
}

// cancelWriter keeps what is written to it and cancels a context on the
// first write, so that a backup's output is what it wrote before it stopped.
type cancelWriter struct {
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	return w.buf.Write(p)
}

// cancelReader cancels a context once more than after bytes were read.
type cancelReader struct {
	r      io.Reader
	n      int
	after  int
	cancel context.CancelFunc
}

func (r *cancelReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.n += n; r.n > r.after {
		r.cancel()
	}
	return n, err
}

// TestBackupStopsOnCancel: a backup stops soon after its context ends, and
// what it wrote is not taken for a backup; a restore stops too and removes
// what it wrote.
func TestBackupStopsOnCancel(t *testing.T) {
	ctx := context.Background()
	src := MustOpen(t, t.TempDir(), badger.Options{})
	_, err := src.Apply(ctx, paddedBatch("node-%04d", 3000, 500))
	require.NoError(t, err)

	t.Run("ErrCancelledMidway", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var full bytes.Buffer
		_, err := src.Backup(ctx, &full)
		require.NoError(t, err)

		w := &cancelWriter{cancel: cancel}
		_, err = src.Backup(cctx, w)
		require.ErrorIs(t, err, context.Canceled)
		require.Contains(t, err.Error(), src.Dir())
		require.Less(t, w.buf.Len(), full.Len()/2, "the backup stopped soon after the cancel")

		// What it wrote is not taken for a backup.
		_, err = badger.Restore(ctx, filepath.Join(t.TempDir(), "x"), bytes.NewReader(w.buf.Bytes()), badger.Options{})
		require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), "truncated")
	})
	t.Run("ErrCancelledBefore", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		var buf bytes.Buffer
		_, err := src.Backup(cctx, &buf)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, buf.Len())
	})
	t.Run("ErrRestoreCancelled", func(t *testing.T) {
		var buf bytes.Buffer
		_, err := src.Backup(ctx, &buf)
		require.NoError(t, err)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Cancel once the loader has read a frame.
		r := &cancelReader{r: bytes.NewReader(buf.Bytes()), after: 1 << 20, cancel: cancel}
		dir := filepath.Join(t.TempDir(), "x")
		_, err = badger.Restore(cctx, dir, r, badger.Options{})
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, r.n, buf.Len(), "the restore stopped before the end")
		_, statErr := os.Stat(dir)
		require.True(t, errors.Is(statErr, os.ErrNotExist))
	})
	t.Run("ErrClosed", func(t *testing.T) {
		s, err := badger.Open(ctx, t.TempDir(), badger.Options{})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		_, err = s.Backup(ctx, &bytes.Buffer{})
		require.Equal(t, state.EINTERNAL, state.ErrorCode(err))
		require.Contains(t, err.Error(), s.Dir())
	})
}

// TestBackupDir: the offline backup refuses a directory that is not a
// state directory instead of creating one, and a directory in use.
func TestBackupDir(t *testing.T) {
	ctx := context.Background()
	t.Run("ErrMissing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "typo")
		_, err := badger.BackupDir(ctx, dir, &bytes.Buffer{}, badger.Options{})
		require.Equal(t, state.ENOTFOUND, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), dir)
		_, statErr := os.Stat(dir)
		require.True(t, errors.Is(statErr, os.ErrNotExist), "no store was created")
	})
	t.Run("ErrNotAStore", func(t *testing.T) {
		dir := t.TempDir()
		_, err := badger.BackupDir(ctx, dir, &bytes.Buffer{}, badger.Options{})
		require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), dir)
	})
	t.Run("ErrLocked", func(t *testing.T) {
		dir := t.TempDir()
		MustOpen(t, dir, badger.Options{})
		_, err := badger.BackupDir(ctx, dir, &bytes.Buffer{}, badger.Options{})
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		require.Contains(t, err.Error(), dir)
	})
	t.Run("OK", func(t *testing.T) {
		dir := t.TempDir()
		s, err := badger.Open(ctx, dir, badger.Options{})
		require.NoError(t, err)
		_, err = s.PutObject(ctx, state.ActorGit, hw("node-01", nil))
		require.NoError(t, err)
		want := dumpStore(t, s)
		require.NoError(t, s.Close())
		var buf bytes.Buffer
		info, err := badger.BackupDir(ctx, dir, &buf, badger.Options{})
		require.NoError(t, err)
		require.Equal(t, 1, info.Objects)
		restored, _ := mustRestore(t, buf.Bytes())
		require.Equal(t, want, dumpStore(t, restored))
	})
}
