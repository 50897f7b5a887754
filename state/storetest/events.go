package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func testEvents(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("Ordering", func(t *testing.T) {
		s, clock := openDefault(t, open)
		bounds, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, state.EventBounds{Oldest: 1, Latest: 0}, bounds, "an empty log")

		for i := range 5 {
			mustPut(t, s, hardware(fmt.Sprintf("n%d", i), nil))
			clock.Advance(time.Second)
		}
		appendEvents(t, s, 5, "sync")
		evs, err := s.Events(ctx, state.EventQuery{})
		require.NoError(t, err)
		require.Len(t, evs, 10)
		requireContiguous(t, evs, 1)
		for i := 1; i < len(evs); i++ {
			require.False(t, evs[i].Time.Before(evs[i-1].Time), "times do not go back")
		}
		bounds, err = s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, state.EventBounds{Oldest: 1, Latest: 10}, bounds)

		evs, err = s.Events(ctx, state.EventQuery{From: 4, Limit: 3})
		require.NoError(t, err)
		requireContiguous(t, evs, 4)
		require.Len(t, evs, 3)

		evs, err = s.Events(ctx, state.EventQuery{Descending: true, Limit: 3})
		require.NoError(t, err)
		require.Equal(t, []uint64{10, 9, 8}, seqs(evs), "newest first")
		evs, err = s.Events(ctx, state.EventQuery{Descending: true, From: 2})
		require.NoError(t, err)
		require.Equal(t, []uint64{2, 1}, seqs(evs))
	})

	t.Run("Filter", func(t *testing.T) {
		s, _ := openDefault(t, open)
		mustPut(t, s, hardware("n1", nil))
		mustPut(t, s, hardware("n2", nil))
		ns := hardware("n1", nil)
		ns.Namespace = "other"
		mustPut(t, s, ns)
		_, err := s.PutRun(ctx, state.ActorReconciler, newRun("wf-1", 1))
		require.NoError(t, err)
		_, err = s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Events: []state.Event{
			{Type: state.EventBMC, Kind: state.KindHardware, Name: "n1", Message: "power cycled"},
		}})
		require.NoError(t, err)

		for _, tt := range []struct {
			name   string
			filter state.EventFilter
			want   []uint64
		}{
			{"All", state.EventFilter{}, []uint64{1, 2, 3, 4, 5}},
			{"Kind", state.EventFilter{Kind: state.KindWorkflow}, []uint64{4}},
			{"Name", state.EventFilter{Kind: state.KindHardware, Name: "n1"}, []uint64{1, 5}},
			{"Namespace", state.EventFilter{Namespace: "other"}, []uint64{3}},
			{"Type", state.EventFilter{Types: []state.EventType{state.EventBMC, state.EventRunState}}, []uint64{4, 5}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				evs, err := s.Events(ctx, state.EventQuery{Filter: tt.filter})
				require.NoError(t, err)
				require.Equal(t, tt.want, seqs(evs))
			})
		}
	})

	t.Run("ConcurrentWritersGapFree", func(t *testing.T) {
		s, _ := openDefault(t, open)
		const writers, each = 16, 20
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, err := s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Events: []state.Event{
						{Type: state.EventSync, Message: fmt.Sprintf("w%d-%d a", w, i)},
						{Type: state.EventSync, Message: fmt.Sprintf("w%d-%d b", w, i)},
					}})
					if err != nil {
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
		evs, err := s.Events(ctx, state.EventQuery{Limit: 10000})
		require.NoError(t, err)
		require.Len(t, evs, writers*each*2)
		requireContiguous(t, evs, 1)
		for i := 0; i < len(evs); i += 2 {
			// The two events of a batch are adjacent: batches do not
			// interleave.
			require.Equal(t, evs[i].Message[:len(evs[i].Message)-2]+" b", evs[i+1].Message)
		}
	})
}

func seqs(evs []state.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

// collect reads n events from w, failing the test if they take more than
// 30 seconds (a hang, not a speed target).
func collect(t *testing.T, w state.Watcher, n int) []state.Event {
	t.Helper()
	var out []state.Event
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-w.Events():
			require.True(t, ok, "watch ended early after %d of %d events: %v", len(out), n, w.Err())
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("watch delivered %d of %d events", len(out), n)
		}
	}
	return out
}

// requireEnds waits for the watch channel to close and returns Err.
func requireEnds(t *testing.T, w state.Watcher) error {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
		case <-timeout:
			t.Fatal("watch did not end")
		}
	}
}

func testWatch(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("FromOldSequence", func(t *testing.T) {
		s, _ := openDefault(t, open)
		appendEvents(t, s, 50, "history")
		w, err := s.Watch(ctx, 10, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		got := collect(t, w, 41)
		requireContiguous(t, got, 10)

		appendEvents(t, s, 20, "live")
		got = collect(t, w, 20)
		requireContiguous(t, got, 51)
		require.Equal(t, "live 0", got[0].Message)
	})

	t.Run("FromNow", func(t *testing.T) {
		s, _ := openDefault(t, open)
		appendEvents(t, s, 5, "history")
		w, err := s.Watch(ctx, 0, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		appendEvents(t, s, 3, "live")
		got := collect(t, w, 3)
		requireContiguous(t, got, 6)
	})

	t.Run("Filter", func(t *testing.T) {
		s, _ := openDefault(t, open)
		w, err := s.Watch(ctx, 1, state.EventFilter{Kind: state.KindHardware, Name: "n2"})
		require.NoError(t, err)
		defer w.Close()
		for i := range 4 {
			mustPut(t, s, hardware(fmt.Sprintf("n%d", i), nil))
		}
		got := collect(t, w, 1)
		require.Equal(t, "n2", got[0].Name)
		require.Equal(t, uint64(3), got[0].Seq)
	})

	// Writers run while watchers join at different points of the history,
	// one of them reading slowly: every watcher must see every event once,
	// in order, across the switch from the stored log to live delivery.
	t.Run("NoGapsUnderLoad", func(t *testing.T) {
		s, _ := openDefault(t, open)
		appendEvents(t, s, 100, "before")
		const writers, each = 8, 50
		total := uint64(100 + writers*each)

		var wg sync.WaitGroup
		errs := make(chan error, writers+8)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Apply(ctx, &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: fmt.Sprintf("w%d %d", w, i)}}}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		var watchers sync.WaitGroup
		for i, from := range []uint64{1, 1, 50, 100, 200} {
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				w, err := s.Watch(ctx, from, state.EventFilter{})
				if err != nil {
					errs <- err
					return
				}
				defer w.Close()
				next := from
				for next <= total {
					select {
					case ev, ok := <-w.Events():
						if !ok {
							errs <- fmt.Errorf("watcher %d ended at %d: %v", i, next, w.Err())
							return
						}
						if ev.Seq != next {
							errs <- fmt.Errorf("watcher %d from %d: got %d, want %d", i, from, ev.Seq, next)
							return
						}
						next++
						if i == 0 && next%50 == 0 {
							time.Sleep(5 * time.Millisecond) // a slow reader
						}
					case <-time.After(30 * time.Second):
						errs <- fmt.Errorf("watcher %d stuck at %d", i, next)
						return
					}
				}
			}()
		}
		wg.Wait()
		watchers.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		bounds, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, total, bounds.Latest)
	})

	t.Run("ContextEnds", func(t *testing.T) {
		s, _ := openDefault(t, open)
		cctx, cancel := context.WithCancel(ctx)
		w, err := s.Watch(cctx, 0, state.EventFilter{})
		require.NoError(t, err)
		cancel()
		require.ErrorIs(t, requireEnds(t, w), context.Canceled)
	})

	t.Run("Close", func(t *testing.T) {
		s, _ := openDefault(t, open)
		w, err := s.Watch(ctx, 0, state.EventFilter{})
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, requireEnds(t, w), "closing a watcher is not an error")
	})

	t.Run("StoreCloses", func(t *testing.T) {
		s, _ := openDefault(t, open)
		w, err := s.Watch(ctx, 0, state.EventFilter{})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		requireCode(t, requireEnds(t, w), state.EINTERNAL)
	})
}

func testRetention(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("MaxEvents", func(t *testing.T) {
		clock := &Clock{}
		s := open(t, Config{Now: clock.Now, Retention: state.Retention{MaxEvents: 10, MaxAge: -1}})
		appendEvents(t, s, 25, "e")
		n, err := s.CompactEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, 15, n)

		bounds, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, state.EventBounds{Oldest: 16, Latest: 25}, bounds)
		evs, err := s.Events(ctx, state.EventQuery{})
		require.NoError(t, err)
		requireContiguous(t, evs, 16)
		require.Len(t, evs, 10)

		_, err = s.Events(ctx, state.EventQuery{From: 5})
		requireCode(t, err, state.ENOTFOUND, "events that retention removed")
		_, err = s.Watch(ctx, 5, state.EventFilter{})
		requireCode(t, err, state.ENOTFOUND)
		require.Contains(t, state.ErrorMessage(err), "16")

		w, err := s.Watch(ctx, 16, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		requireContiguous(t, collect(t, w, 10), 16)

		// Numbering continues where it was.
		res := appendEvents(t, s, 1, "next")
		require.Equal(t, uint64(26), res[0].Seq)
		requireContiguous(t, collect(t, w, 1), 26)

		n, err = s.CompactEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("MaxAge", func(t *testing.T) {
		clock := &Clock{}
		s := open(t, Config{Now: clock.Now, Retention: state.Retention{MaxEvents: -1, MaxAge: time.Hour}})
		appendEvents(t, s, 5, "old")
		clock.Advance(2 * time.Hour)
		appendEvents(t, s, 5, "new")
		n, err := s.CompactEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		evs, err := s.Events(ctx, state.EventQuery{})
		require.NoError(t, err)
		requireContiguous(t, evs, 6)
		require.Len(t, evs, 5)

		clock.Advance(2 * time.Hour)
		n, err = s.CompactEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		bounds, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, state.EventBounds{Oldest: 11, Latest: 10}, bounds, "an empty log keeps its numbering")
		res := appendEvents(t, s, 1, "after")
		require.Equal(t, uint64(11), res[0].Seq)
	})

	t.Run("SlowWatcher", func(t *testing.T) {
		s := open(t, Config{Retention: state.Retention{MaxEvents: 10, MaxAge: -1}})
		w, err := s.Watch(ctx, 1, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		for i := range 20 {
			b := &state.Batch{}
			for j := range 100 {
				b.Events = append(b.Events, state.Event{Type: state.EventSync, Message: fmt.Sprintf("e %d", i*100+j)})
			}
			_, err := s.Apply(ctx, b)
			require.NoError(t, err)
		}
		_, err = s.CompactEvents(ctx)
		require.NoError(t, err)
		// The watcher never read while the log moved on. It may have
		// buffered events, but what it delivers has no gap: either
		// everything, or a prefix and then ENOTFOUND.
		next := uint64(1)
		for ev := range w.Events() {
			require.Equal(t, next, ev.Seq)
			next++
			if next == 2001 {
				return
			}
		}
		requireCode(t, w.Err(), state.ENOTFOUND)
	})
}

func testClose(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openDefault(t, open)
	mustPut(t, s, hardware("n1", nil))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err := s.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "n1"})
	requireCode(t, err, state.EINTERNAL)
	_, err = s.PutObject(ctx, state.ActorGit, hardware("n2", nil))
	requireCode(t, err, state.EINTERNAL)
	_, err = s.Watch(ctx, 0, state.EventFilter{})
	requireCode(t, err, state.EINTERNAL)
}
