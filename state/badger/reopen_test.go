package badger_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

func hw(name string, labels map[string]string) *state.Object {
	return &state.Object{
		Kind:   state.KindHardware,
		Name:   name,
		Labels: labels,
		Spec:   json.RawMessage(`{"interfaces":[{"dhcp":{"mac":"00:00:00:00:00:01"}}]}`),
		Source: state.SourceGit,
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := badger.Options{Retention: state.Retention{MaxEvents: 3, MaxAge: -1}, CompactInterval: -1, GCInterval: -1}

	s, err := badger.Open(ctx, dir, opts)
	require.NoError(t, err)
	var lastRV uint64
	for i := range 5 {
		o, err := s.PutObject(ctx, state.ActorGit, hw(fmt.Sprintf("n%d", i), nil))
		require.NoError(t, err)
		lastRV = o.ResourceVersion
	}
	_, err = s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{LastAppliedRevision: "main@sha1:1"}})
	require.NoError(t, err)
	removed, err := s.CompactEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, removed)
	require.NoError(t, s.Close())

	s, err = badger.Open(ctx, dir, opts)
	require.NoError(t, err)
	defer s.Close()
	page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	require.Len(t, page.Objects, 5)
	st, err := s.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:1", st.LastAppliedRevision)

	bounds, err := s.EventBounds(ctx)
	require.NoError(t, err)
	require.Equal(t, state.EventBounds{Oldest: 3, Latest: 5}, bounds, "retention and numbering survive a restart")
	o, err := s.PutObject(ctx, state.ActorGit, hw("n9", nil))
	require.NoError(t, err)
	require.Greater(t, o.ResourceVersion, lastRV, "resource versions never repeat")
	evs, err := s.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, uint64(6), evs[0].Seq)
}

func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	MustOpen(t, dir, badger.Options{})

	done := make(chan error, 1)
	go func() {
		_, err := badger.Open(context.Background(), dir, badger.Options{})
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
		require.Contains(t, state.ErrorMessage(err), dir)
		require.Contains(t, state.ErrorMessage(err), "in use by another process")
	case <-time.After(30 * time.Second):
		t.Fatal("opening a locked directory hangs")
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("ErrDirRequired", func(t *testing.T) {
		_, err := badger.Open(context.Background(), "", badger.Options{})
		require.Equal(t, state.EINVALID, state.ErrorCode(err))
	})
	t.Run("ErrNotADirectory", func(t *testing.T) {
		file := t.TempDir() + "/file"
		require.NoError(t, writeFile(file, "x"))
		_, err := badger.Open(context.Background(), file, badger.Options{})
		require.Equal(t, state.EINTERNAL, state.ErrorCode(err))
		require.Contains(t, state.ErrorMessage(err), file)
	})
}

// TestGroupCommit checks that concurrent writers share syncs: fewer group
// commits than batches. Throughput itself is measured by the benchmarks.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{})
	const writers, each = 64, 5
	errs := make(chan error, writers*each)
	for w := range writers {
		go func() {
			for i := range each {
				_, err := s.Apply(ctx, &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: fmt.Sprintf("%d/%d", w, i)}}})
				errs <- err
			}
		}()
	}
	for range writers * each {
		require.NoError(t, <-errs)
	}
	st := s.Stats()
	require.Equal(t, uint64(writers*each), st.Batches.Load())
	require.Less(t, st.Groups.Load(), st.Batches.Load(), "concurrent batches were committed together")
	t.Logf("%d batches in %d groups, %d transactions", st.Batches.Load(), st.Groups.Load(), st.Txns.Load())
}

// TestBackgroundWork checks that Open's timers run and that Close stops every
// goroutine the store started.
func TestBackgroundWork(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	s, err := badger.Open(ctx, t.TempDir(), badger.Options{
		Retention:       state.Retention{MaxEvents: 5, MaxAge: -1},
		CompactInterval: 10 * time.Millisecond,
		GCInterval:      10 * time.Millisecond,
	})
	require.NoError(t, err)
	b := &state.Batch{}
	for i := range 20 {
		b.Events = append(b.Events, state.Event{Type: state.EventSync, Message: fmt.Sprint(i)})
	}
	_, err = s.Apply(ctx, b)
	require.NoError(t, err)
	w, err := s.Watch(ctx, 0, state.EventFilter{})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		bounds, err := s.EventBounds(ctx)
		return err == nil && bounds.Oldest == 16
	}, 30*time.Second, 10*time.Millisecond, "the compaction timer applies retention")
	require.Eventually(t, func() bool { return s.Stats().GCRuns.Load() > 0 }, 30*time.Second, 10*time.Millisecond)

	require.NoError(t, s.Close())
	_, open := <-w.Events()
	require.False(t, open, "Close ends watchers")
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left after Close:\n%s", goroutines())
}

func goroutines() string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "badger") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// incompressible returns n bytes of random text: records are stored
// compressed, so a test that needs a record of some size on disk pads it
// with this rather than with a repeated character.
func incompressible(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rand.Text())
	}
	return b.String()[:n]
}
