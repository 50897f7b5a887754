package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func testApply(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("Result", func(t *testing.T) {
		s, clock := openDefault(t, open)
		old := mustPut(t, s, hardware("old", nil))
		const rev = "main@sha1:1111111111111111111111111111111111111111"
		b := &state.Batch{Actor: state.ActorGit, Revision: rev}
		b.Put(hardware("a", nil), "declared in hardware/a.yaml")
		b.Put(hardware("b", nil), "")
		b.Delete(old.Key(), old.ResourceVersion, "removed from Git")
		b.Runs = append(b.Runs, newRun("wf-1", 1))
		b.Events = append(b.Events, state.Event{Type: state.EventSync, Message: "applied " + rev})
		b.Sync = &state.SyncStatus{LastAttemptedRevision: rev, LastAppliedRevision: rev, LastSyncAt: clock.Now(), LastDuration: 1500 * time.Millisecond}

		res, err := s.Apply(ctx, b)
		require.NoError(t, err)
		require.Len(t, res.Objects, 3)
		require.Equal(t, "a", res.Objects[0].Name)
		require.Equal(t, "old", res.Objects[2].Name, "a deletion returns the object as it was")
		require.Len(t, res.Runs, 1)
		require.Less(t, res.Objects[0].ResourceVersion, res.Objects[1].ResourceVersion)
		require.Less(t, res.Objects[1].ResourceVersion, res.Runs[0].ResourceVersion)

		types := []state.EventType{state.EventCreated, state.EventCreated, state.EventDeleted, state.EventRunState, state.EventSync}
		require.Len(t, res.Events, len(types))
		requireContiguous(t, res.Events, 2)
		for i, ev := range res.Events {
			require.Equal(t, types[i], ev.Type, "event %d", i)
			require.Equal(t, state.ActorGit, ev.Actor, "the batch actor is on every event")
			require.NotEmpty(t, ev.Revision)
			require.Equal(t, clock.Now(), ev.Time.UTC())
		}
		require.Equal(t, rev, res.Events[2].Revision, "events without a revision get the batch's")
		require.Equal(t, "declared in hardware/a.yaml", res.Events[0].Message)

		stored, err := s.Events(ctx, state.EventQuery{From: 2})
		require.NoError(t, err)
		require.Equal(t, normalize(res.Events), normalize(stored))

		st, err := s.SyncStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, rev, st.LastAppliedRevision)
		require.Equal(t, 1500*time.Millisecond, st.LastDuration)
	})

	t.Run("SyncStatus", func(t *testing.T) {
		s, clock := openDefault(t, open)
		st, err := s.SyncStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, state.SyncStatus{}, *st, "zero before the first sync")

		want := state.SyncStatus{
			LastAttemptedRevision: "main@sha1:2",
			LastAppliedRevision:   "main@sha1:1",
			Errors:                []state.SyncError{{File: "hardware/n1.yaml", Line: 3, Column: 5, Path: "spec.interfaces[0].dhcp.mac", Message: "invalid MAC"}},
			Suspended:             true,
			LastSyncAt:            clock.Now(),
		}
		_, err = s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Sync: &want})
		require.NoError(t, err)
		st, err = s.SyncStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, want.Errors, st.Errors)
		require.Equal(t, "hardware/n1.yaml:3:5: spec.interfaces[0].dhcp.mac: invalid MAC", st.Errors[0].Error())
		require.True(t, st.Suspended)
		require.True(t, want.LastSyncAt.Equal(st.LastSyncAt))
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		s, _ := openDefault(t, open)
		taken := mustPut(t, s, hardware("taken", nil))
		before, err := s.EventBounds(ctx)
		require.NoError(t, err)

		b := &state.Batch{Actor: state.ActorGit}
		b.Put(hardware("new-1", nil), "")
		b.Put(hardware("new-2", nil), "")
		b.Runs = append(b.Runs, newRun("wf-1", 1))
		b.Put(hardware("taken", nil), "") // exists: conflict
		_, err = s.Apply(ctx, b)
		requireCode(t, err, state.ECONFLICT)
		require.Contains(t, state.ErrorMessage(err), "Hardware/taken")

		for _, name := range []string{"new-1", "new-2"} {
			_, err := s.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: name})
			requireCode(t, err, state.ENOTFOUND, "nothing of a failed batch is written")
		}
		_, err = s.GetRun(ctx, state.RunKey{Workflow: "wf-1", Number: 1})
		requireCode(t, err, state.ENOTFOUND)
		after, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, before, after, "a failed batch appends no events")

		// The sequence continues without a hole.
		res := appendEvents(t, s, 1, "after")
		require.Equal(t, before.Latest+1, res[0].Seq)
		got, err := s.GetObject(ctx, taken.Key())
		require.NoError(t, err)
		require.Equal(t, taken.ResourceVersion, got.ResourceVersion)
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		s, _ := openDefault(t, open)
		_, err := s.Apply(ctx, &state.Batch{})
		requireCode(t, err, state.EINVALID, "empty batch")

		b := &state.Batch{}
		b.Put(hardware("twice", nil), "")
		b.Delete(state.ObjectKey{Kind: state.KindHardware, Name: "twice"}, 0, "")
		_, err = s.Apply(ctx, b)
		requireCode(t, err, state.EINVALID)
		require.Contains(t, state.ErrorMessage(err), "Hardware/twice")

		_, err = s.Apply(ctx, &state.Batch{Events: []state.Event{{Message: "no type"}}})
		requireCode(t, err, state.EINVALID)
		_, err = s.Apply(ctx, &state.Batch{Events: []state.Event{{Type: state.EventBMC, Seq: 9}}})
		requireCode(t, err, state.EINVALID, "callers cannot choose sequence numbers")
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s, _ := openDefault(t, open)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		b := &state.Batch{}
		b.Put(hardware("never", nil), "")
		_, err := s.Apply(cctx, b)
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "never"})
		requireCode(t, err, state.ENOTFOUND)
	})

	// Many callers at once, as the workflow engine and the API produce
	// them: each must get its own answer, and a conflict of one must not
	// fail the others that are committed with it.
	t.Run("ConcurrentConflictFailsOnlyLoser", func(t *testing.T) {
		s, _ := openDefault(t, open)
		const n = 64
		var wg sync.WaitGroup
		var won atomic.Int32
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := s.PutObject(ctx, state.ActorGit, hardware(fmt.Sprintf("own-%02d", i), nil))
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := s.PutObject(ctx, state.ActorGit, hardware("contended", nil))
				if err == nil {
					won.Add(1)
				} else if state.ErrorCode(err) != state.ECONFLICT {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), won.Load(), "exactly one creator wins")
		page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Len(t, page.Objects, n+1)
	})

	t.Run("OptimisticConcurrency", func(t *testing.T) {
		s, _ := openDefault(t, open)
		key := mustPut(t, s, counterObject(0, 0)).Key()
		const workers, incs = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range incs {
					if err := increment(ctx, s, key); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		got, err := s.GetObject(ctx, key)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(workers*incs), got.Labels["n"], "no increment was lost")
	})

	t.Run("ReadersSeeWholeBatches", func(t *testing.T) {
		s, _ := openDefault(t, open)
		const batches, size = 30, 20
		done := make(chan struct{})
		readErr := make(chan error, 1)
		go func() {
			defer close(readErr)
			for {
				select {
				case <-done:
					return
				default:
				}
				page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
				if err != nil {
					readErr <- err
					return
				}
				per := map[string]int{}
				for _, o := range page.Objects {
					per[o.Labels["batch"]]++
				}
				for b, n := range per {
					if n != size {
						readErr <- fmt.Errorf("reader saw %d of the %d objects of batch %s", n, size, b)
						return
					}
				}
			}
		}()
		for i := range batches {
			b := &state.Batch{Actor: state.ActorGit}
			for j := range size {
				b.Put(hardware(fmt.Sprintf("b%02d-%02d", i, j), map[string]string{"batch": strconv.Itoa(i)}), "")
			}
			_, err := s.Apply(ctx, b)
			require.NoError(t, err)
		}
		close(done)
		for err := range readErr {
			require.NoError(t, err)
		}
		page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Len(t, page.Objects, batches*size)
	})
}

func counterObject(n int, rv uint64) *state.Object {
	o := hardware("counter", map[string]string{"n": strconv.Itoa(n)})
	o.Source = state.SourceAPI
	o.Spec = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
	o.ResourceVersion = rv
	return o
}

// increment is a read-modify-write loop that retries on conflict, the way
// every API handler updates an object.
func increment(ctx context.Context, s state.Store, key state.ObjectKey) error {
	for {
		cur, err := s.GetObject(ctx, key)
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(cur.Labels["n"])
		_, err = s.PutObject(ctx, state.APIUser("inc"), counterObject(n+1, cur.ResourceVersion))
		if state.ErrorCode(err) == state.ECONFLICT {
			continue
		}
		return err
	}
}

// normalize makes events read back from a store comparable with events
// returned by Apply: times lose their monotonic reading and location.
func normalize(evs []state.Event) []state.Event {
	out := make([]state.Event, len(evs))
	for i, ev := range evs {
		ev.Time = ev.Time.UTC()
		out[i] = ev
	}
	return out
}
