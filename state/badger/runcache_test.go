package badger_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// The writer keeps the last committed record of runs in progress, decoded,
// so that a run's next write does not read and decode it. These tests show
// that what it keeps is always what is stored (so preconditions, events and
// CreatedAt come out as from the stored record), whatever the path a write
// took: grouped with others, failed, split over several transactions, or
// past the cache's bound; and that a stale cache would be caught.

// cacheRun is a run with n actions, all PENDING.
func cacheRun(ns, wf string, n int) *state.WorkflowRun {
	r := &state.WorkflowRun{Namespace: ns, Workflow: wf, Number: 1, State: state.RunRunning, Hardware: "hw-" + wf}
	for i := range n {
		r.Actions = append(r.Actions, state.RunAction{Task: "t", Name: fmt.Sprintf("a%d", i), Image: "img", Worker: "hw-" + wf,
			State: state.RunPending, Environment: map[string]string{"K": "v"}})
	}
	return r
}

// requireCacheMatches fails unless the writer's copy of each run (when it
// has one) encodes exactly as the stored record does, and reports how many
// it had.
func requireCacheMatches(t *testing.T, s *badger.Store, keys []state.RunKey) int {
	t.Helper()
	cached := 0
	for _, k := range keys {
		c := badger.CachedRun(s, k)
		if c == nil {
			continue
		}
		cached++
		stored, err := s.GetRun(context.Background(), k)
		require.NoError(t, err)
		want, err := json.Marshal(stored)
		require.NoError(t, err)
		got, err := json.Marshal(c)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), "cached %s differs from the stored record", k)
	}
	return cached
}

// step moves run r on by one transition: hands out or finishes its current
// action, or ends it after the last.
func step(r *state.WorkflowRun) *state.WorkflowRun {
	n := *r
	n.Actions = append([]state.RunAction(nil), r.Actions...)
	if n.CurrentAction >= len(n.Actions) {
		n.State = state.RunSuccess
		return &n
	}
	a := &n.Actions[n.CurrentAction]
	if a.State == state.RunPending {
		a.State, a.Attempt = state.RunRunning, a.Attempt+1
	} else {
		a.State = state.RunSuccess
		n.CurrentAction++
	}
	return &n
}

// TestRunCacheConcurrent drives many runs at once (so that their writes
// share group commits), each also written by a second, stale writer at
// every step: exactly one of each pair wins, the loser is told the
// version that is stored, and each winner's events are those of the
// stored record it replaced.
func TestRunCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{})
	const runs, actions = 40, 4
	var keys []state.RunKey
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for i := range runs {
		r, err := s.PutRun(ctx, state.ActorReconciler, cacheRun("ns", fmt.Sprintf("wf-%02d", i), actions))
		require.NoError(t, err)
		keys = append(keys, r.Key())
		wg.Add(1)
		go func(cur *state.WorkflowRun) {
			defer wg.Done()
			for !cur.State.Terminal() {
				next := step(cur)
				// A rival write from the same version: only one may win.
				rival := step(cur)
				rival.Actions[0].Message = "rival"
				var res [2]*state.Result
				var rerr [2]error
				var pair sync.WaitGroup
				for j, w := range []*state.WorkflowRun{next, rival} {
					pair.Add(1)
					go func() {
						defer pair.Done()
						res[j], rerr[j] = s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Runs: []*state.WorkflowRun{w}})
					}()
				}
				pair.Wait()
				won := 0
				if rerr[0] != nil {
					won = 1
				}
				if rerr[won] != nil || rerr[1-won] == nil {
					errs <- fmt.Errorf("%s: want one winner, got %v and %v", cur.Key(), rerr[0], rerr[1])
					return
				}
				written := res[won].Runs[0]
				want := fmt.Sprintf("%s: resourceVersion %d is stale (current %d)", cur.Key(), cur.ResourceVersion, written.ResourceVersion)
				if state.ErrorCode(rerr[1-won]) != state.ECONFLICT || state.ErrorMessage(rerr[1-won]) != want {
					errs <- fmt.Errorf("loser: got %v, want %s", rerr[1-won], want)
					return
				}
				// The events are those of the record replaced, as stored.
				wantEvents := state.RunEvents(cur, written, state.ActorReconciler, "", written.UpdatedAt)
				if len(wantEvents) != len(res[won].Events) {
					errs <- fmt.Errorf("%s: %d events, want %d", cur.Key(), len(res[won].Events), len(wantEvents))
					return
				}
				for j := range wantEvents {
					if wantEvents[j].Message != res[won].Events[j].Message {
						errs <- fmt.Errorf("%s: event %q, want %q", cur.Key(), res[won].Events[j].Message, wantEvents[j].Message)
						return
					}
				}
				if !written.CreatedAt.Equal(cur.CreatedAt) {
					errs <- fmt.Errorf("%s: createdAt changed", cur.Key())
					return
				}
				cur = written
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 0, requireCacheMatches(t, s, keys), "ended runs are not cached")
	for _, k := range keys {
		r, err := s.GetRun(ctx, k)
		require.NoError(t, err)
		require.Equal(t, state.RunSuccess, r.State)
	}
}

// TestRunCacheFollowsStore checks the cache against the stored record after
// writes of every kind: plain, failed with their batch, ended and started
// again, and split over several transactions.
func TestRunCacheFollowsStore(t *testing.T) {
	ctx := context.Background()
	// Small transactions: a batch of a few runs is split.
	s := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})
	r, err := s.PutRun(ctx, state.ActorReconciler, cacheRun("", "wf-a", 3))
	require.NoError(t, err)
	keys := []state.RunKey{r.Key()}
	require.Equal(t, 1, requireCacheMatches(t, s, keys))

	// A plain write replaces the cached copy; the version it replaced is
	// stale from then on.
	next, err := s.PutRun(ctx, state.ActorReconciler, step(r))
	require.NoError(t, err)
	require.Equal(t, 1, requireCacheMatches(t, s, keys))
	_, err = s.PutRun(ctx, state.ActorReconciler, step(r))
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	require.Equal(t, fmt.Sprintf("%s: resourceVersion %d is stale (current %d)", r.Key(), r.ResourceVersion, next.ResourceVersion), state.ErrorMessage(err))

	// A batch that fails (its object is stale) writes none of its runs,
	// and the cache does not take them either.
	obj, err := s.PutObject(ctx, state.ActorReconciler, &state.Object{Kind: state.KindHardware, Name: "hw", Source: state.SourceAPI, Spec: json.RawMessage(`{}`)})
	require.NoError(t, err)
	bad := &state.Batch{Actor: state.ActorReconciler, Runs: []*state.WorkflowRun{step(next)}}
	stale := *obj
	stale.ResourceVersion--
	bad.Put(&stale, "")
	_, err = s.Apply(ctx, bad)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	require.Equal(t, 1, requireCacheMatches(t, s, keys))
	next, err = s.PutRun(ctx, state.ActorReconciler, step(next)) // from the version stored
	require.NoError(t, err)
	require.Equal(t, 1, requireCacheMatches(t, s, keys))

	// An ended run leaves the cache; written again (a retry), it is read
	// from the store and cached again.
	for !next.State.Terminal() {
		next, err = s.PutRun(ctx, state.ActorReconciler, step(next))
		require.NoError(t, err)
	}
	require.Equal(t, 0, requireCacheMatches(t, s, keys))
	retry := *next
	retry.State, retry.CurrentAction = state.RunPending, 0
	res, err := s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Runs: []*state.WorkflowRun{&retry}})
	require.NoError(t, err)
	require.Equal(t, 1, requireCacheMatches(t, s, keys))
	require.Equal(t, "Workflow/wf-a#1: SUCCESS -> PENDING", res.Events[0].Message, "events from the stored record")

	// A batch too large for one transaction goes through the staging
	// area; its runs are cached as committed.
	big := &state.Batch{Actor: state.ActorReconciler}
	for i := range 12 {
		r := cacheRun("big", fmt.Sprintf("wf-%02d", i), 20)
		for j := range r.Actions {
			// Records are stored compressed: what does not compress
			// keeps the batch larger than one transaction.
			r.Actions[j].Message = rand.Text() + rand.Text()
		}
		big.Runs = append(big.Runs, r)
	}
	res, err = s.Apply(ctx, big)
	require.NoError(t, err)
	require.Positive(t, s.Stats().Splits.Load())
	for _, r := range res.Runs {
		keys = append(keys, r.Key())
	}
	require.Equal(t, len(keys), requireCacheMatches(t, s, keys))
	_, err = s.PutRun(ctx, state.ActorReconciler, step(res.Runs[3]))
	require.NoError(t, err)
	_, err = s.PutRun(ctx, state.ActorReconciler, step(res.Runs[3]))
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "the split batch's version is stale once written over")
	require.Equal(t, len(keys), requireCacheMatches(t, s, keys))
}

// TestRunCacheBound writes more runs in progress than the cache holds:
// it stays within its bound, and runs it dropped are read from the store
// with the same outcome.
func TestRunCacheBound(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{})
	var all []*state.WorkflowRun
	for len(all) < badger.MaxCachedRuns+200 {
		b := &state.Batch{Actor: state.ActorReconciler}
		for range 200 {
			b.Runs = append(b.Runs, cacheRun("", fmt.Sprintf("wf-%05d", len(all)+len(b.Runs)), 1))
		}
		res, err := s.Apply(ctx, b)
		require.NoError(t, err)
		all = append(all, res.Runs...)
	}
	keys := make([]state.RunKey, len(all))
	for i, r := range all {
		keys[i] = r.Key()
	}
	require.Equal(t, badger.MaxCachedRuns, requireCacheMatches(t, s, keys))
	// Every run moves on from the version written, cached or not.
	for i, r := range all {
		if i%50 != 0 {
			continue
		}
		next, err := s.PutRun(ctx, state.ActorReconciler, step(r))
		require.NoError(t, err)
		_, err = s.PutRun(ctx, state.ActorReconciler, step(r))
		require.Equal(t, fmt.Sprintf("%s: resourceVersion %d is stale (current %d)", r.Key(), r.ResourceVersion, next.ResourceVersion), state.ErrorMessage(err))
	}
	require.Equal(t, badger.MaxCachedRuns, requireCacheMatches(t, s, keys))
}

// TestRunRecordsOfOneBatchStayApart: the writer builds each run's record
// in one reused buffer; a batch of runs whose records are stored as they
// are (too small to pack, or incompressible), between packed ones, reads
// back each run as written, before and after a reopen.
func TestRunRecordsOfOneBatchStayApart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := MustOpen(t, dir, badger.Options{})
	b := &state.Batch{Actor: state.ActorReconciler}
	for i := range 6 {
		r := cacheRun("", fmt.Sprintf("wf-%d", i), 0) // small: stored plain
		switch i % 3 {
		case 1:
			r.Reason = incompressible(2000) // large and incompressible: plain
		case 2:
			r = cacheRun("", fmt.Sprintf("wf-%d", i), 20) // packed
		}
		b.Runs = append(b.Runs, r)
	}
	res, err := s.Apply(ctx, b)
	require.NoError(t, err)
	require.Len(t, res.Runs, len(b.Runs))
	check := func(s *badger.Store) {
		for _, want := range res.Runs {
			got, err := s.GetRun(ctx, want.Key())
			require.NoError(t, err)
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(got)
			require.JSONEq(t, string(wantJSON), string(gotJSON), "%s", want.Key())
		}
	}
	check(s)
	require.NoError(t, s.Close())
	check(MustOpen(t, dir, badger.Options{}))
}
