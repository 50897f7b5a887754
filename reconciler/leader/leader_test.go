package leader_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/leader"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

func openStore(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{CompactInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// frozen wraps a store's leases and can stop answering, as a process that
// was sent SIGSTOP stops renewing.
type frozen struct {
	*postgres.Store
	mu     sync.Mutex
	frozen bool
}

func (f *frozen) freeze(on bool) {
	f.mu.Lock()
	f.frozen = on
	f.mu.Unlock()
}

func (f *frozen) RenewLease(ctx context.Context, name, holder string, token uint64, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	stopped := f.frozen
	f.mu.Unlock()
	if stopped {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return f.Store.RenewLease(ctx, name, holder, token, ttl)
}

func start(t *testing.T, leases leader.Leases, name string, ttl time.Duration) (*leader.Elector, context.CancelFunc) {
	t.Helper()
	el := leader.New(leader.Config{Leases: leases, Name: name, TTL: ttl, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = el.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return el, stop
}

func count(els ...*leader.Elector) int {
	n := 0
	for _, el := range els {
		if el.IsLeader() {
			n++
		}
	}
	return n
}

// TestElection: one leader among replicas; a clean shutdown hands over at
// once; a leader that stops renewing (paused) loses its lease within the
// TTL, its term's context ends, and its fenced writes are refused once
// another replica took over.
func TestElection(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	const ttl = 2 * time.Second

	t.Run("OneLeaderAndHandover", func(t *testing.T) {
		els := map[*leader.Elector]context.CancelFunc{}
		var all []*leader.Elector
		for _, name := range []string{"a", "b", "c"} {
			el, stop := start(t, openStore(t, dsn), name, ttl)
			els[el] = stop
			all = append(all, el)
		}
		require.Eventually(t, func() bool { return count(all...) == 1 }, 10*time.Second, 10*time.Millisecond)
		for range 20 {
			require.LessOrEqual(t, count(all...), 1, "never two leaders")
			time.Sleep(20 * time.Millisecond)
		}
		var rest []*leader.Elector
		for _, el := range all {
			if el.IsLeader() {
				els[el]()
			} else {
				rest = append(rest, el)
			}
		}
		begun := time.Now()
		require.Eventually(t, func() bool { return count(rest...) == 1 }, ttl, 10*time.Millisecond, "the leader released the lease: no wait for it to expire")
		t.Logf("new leader after a clean shutdown: %s", time.Since(begun).Round(time.Millisecond))
	})

	t.Run("PausedLeaderIsFenced", func(t *testing.T) {
		store := openStore(t, dsn)
		_, err := store.Apply(context.Background(), &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: "start"}}})
		require.NoError(t, err)
		fa := &frozen{Store: openStore(t, dsn)}
		a, _ := start(t, fa, "paused", ttl)
		require.Eventually(t, a.IsLeader, 10*time.Second, 10*time.Millisecond)
		term, ok := a.Leader()
		require.True(t, ok)
		_, err = store.Apply(term, &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: "as leader"}}})
		require.NoError(t, err, "the leader's fenced write")

		fa.freeze(true)
		b, _ := start(t, openStore(t, dsn), "other", ttl)
		require.Eventually(t, b.IsLeader, 3*ttl, 10*time.Millisecond, "another replica takes over within the lease")
		require.False(t, a.IsLeader(), "the paused leader knows it lost")
		require.Error(t, term.Err(), "its term's context ended: no more leader work")

		before, err := store.EventBounds(context.Background())
		require.NoError(t, err)
		_, err = store.Apply(context.WithoutCancel(term), &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: "deposed write"}}})
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		after, err := store.EventBounds(context.Background())
		require.NoError(t, err)
		require.Equal(t, before, after, "the deposed leader wrote nothing")

		fa.freeze(false)
		time.Sleep(ttl)
		require.False(t, a.IsLeader(), "it stays a follower while the other holds the lease")
		require.True(t, b.IsLeader())
	})
}
