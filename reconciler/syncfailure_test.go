package reconciler_test

import (
	"context"
	"errors"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// faultyStore is the real Badger store with a passing fault: the next
// fails batches that write objects fail, as a full disk or an I/O error
// would make them fail, and then it recovers.
type faultyStore struct {
	*badger.Store
	fails atomic.Int32
}

func (s *faultyStore) Apply(ctx context.Context, b *state.Batch) (*state.Result, error) {
	if len(b.Objects) > 0 && s.fails.Add(-1) >= 0 {
		return nil, errors.New("write /var/lib/tink/000042.vlog: input/output error")
	}
	return s.Store.Apply(ctx, b)
}

// syncs counts the syncs a loop ran, by result.
type syncs struct {
	mu  gosync.Mutex
	got []reconciler.SyncResult
}

func (s *syncs) add(r reconciler.SyncResult, _ string, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
}

func (s *syncs) list() []reconciler.SyncResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]reconciler.SyncResult(nil), s.got...)
}

// startLoop runs a loop over a watched directory holding files, with
// retries 30 ms apart at first.
func startLoop(t *testing.T, st state.Store, files map[string][]byte) (*reconciler.Loop, *syncs, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	writeRepo(t, dir, files)
	src, err := gitsource.NewDir(gitsource.Config{Repo: dir})
	require.NoError(t, err)
	loop := reconciler.NewLoop(reconciler.New(reconciler.Config{Store: st}), src, 0)
	loop.RetryBackoff, loop.RetryMaxBackoff = 30*time.Millisecond, 200*time.Millisecond
	seen := &syncs{}
	loop.OnSync = seen.add
	var wg gosync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = src.Run(ctx) }()
	go func() { defer wg.Done(); require.NoError(t, loop.Run(ctx)) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return loop, seen, dir
}

// TestSyncFailureClasses: a transient failure (the store fails to write)
// is recorded with its class and reason and retried with backoff until it
// applies, with no new revision and nobody asking; a stalled one (errors
// in the repository) is recorded and not retried; a suspended loop is
// waiting.
func TestSyncFailureClasses(t *testing.T) {
	ctx := context.Background()
	st := &faultyStore{Store: MustOpenStore(t)}
	st.fails.Store(3)
	files := map[string][]byte{}
	for name, f := range repo(2) {
		files[name] = f.Data
	}
	loop, seen, dir := startLoop(t, st, files)

	failed := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.Failure == state.FailureTransient && s.Retries >= 2 })
	require.Contains(t, failed.Reason, "applying the revision failed (the server's log has the details); retry ")
	require.NotContains(t, failed.Reason, "/var/lib/tink", "internals stay in the log")
	require.False(t, failed.NextRetryAt.IsZero())
	require.Empty(t, failed.LastAppliedRevision)

	applied := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision != "" })
	require.Empty(t, applied.Failure, "applied: the failure is over")
	require.Empty(t, applied.Reason)
	require.Zero(t, applied.Retries)
	require.Equal(t, []reconciler.SyncResult{reconciler.SyncFailed, reconciler.SyncFailed, reconciler.SyncFailed, reconciler.SyncApplied}, seen.list(),
		"retried after each transient failure, until applied")

	// Stalled: a broken revision is recorded and not retried.
	writeRepo(t, dir, map[string][]byte{"hardware/node-05.yaml": []byte("kind: Hardwre\n")})
	stalled := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.Failure == state.FailureStalled })
	require.Equal(t, "the repository has 1 error(s): fix them in Git; this revision is not tried again until the revision changes or a sync is asked for", stalled.Reason)
	n := len(seen.list())
	time.Sleep(500 * time.Millisecond) // more than a few retry intervals
	require.Len(t, seen.list(), n, "a stalled sync is not retried")

	// Waiting: suspended until resumed.
	require.NoError(t, loop.Suspend(ctx, state.APIUser("alice")))
	suspended, err := st.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, state.FailureWaiting, suspended.Failure)
	require.Equal(t, "suspended by api:alice: new revisions are not applied until reconciliation is resumed", suspended.Reason)
}
