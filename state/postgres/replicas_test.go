package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
	"github.com/tinkops/tinkops/state/storetest"
)

// sharedDB is one cluster and database for the tests of this file; each
// test takes a schema of its own.
type sharedDB struct {
	pg  *pgtest.Server
	dsn string
	db  string
}

func newSharedDB(t *testing.T) *sharedDB {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	return &sharedDB{pg: pg, dsn: dsn, db: dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]}
}

func event(msg string) *state.Batch {
	return &state.Batch{Actor: state.ActorReconciler, Events: []state.Event{{Type: state.EventSync, Message: msg}}}
}

// TestReplicas checks what several stores on one database (one per
// replica) must guarantee beyond the single-store contract.
func TestReplicas(t *testing.T) {
	db := newSharedDB(t)
	ctx := context.Background()

	t.Run("ConcurrentMigration", func(t *testing.T) {
		// Replicas starting at once on an empty database: one migrates,
		// the others wait on the advisory lock and find nothing to do.
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := postgres.Open(ctx, db.dsn, postgres.Options{Schema: "migrate_race", CompactInterval: -1})
				if err == nil {
					_, err = s.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("n-%p", s), Source: state.SourceGit})
					s.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, fmt.Sprint(postgres.SchemaVersion()), db.pg.Exec(t, db.db, "SELECT string_agg(version::text, ',') FROM migrate_race.schema_migrations"))
	})

	t.Run("NewerSchemaRefused", func(t *testing.T) {
		MustOpen(t, db.dsn, postgres.Options{Schema: "newer"}).Close()
		db.pg.Exec(t, db.db, "INSERT INTO newer.schema_migrations (version) VALUES (999)")
		_, err := postgres.Open(ctx, db.dsn, postgres.Options{Schema: "newer"})
		require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
		require.Contains(t, state.ErrorMessage(err), "schema version 999")
	})

	t.Run("WatchAcrossStores", func(t *testing.T) {
		a := MustOpen(t, db.dsn, postgres.Options{Schema: "watch_across"})
		b := MustOpen(t, db.dsn, postgres.Options{Schema: "watch_across", PollInterval: time.Hour})
		w, err := b.Watch(ctx, 0, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		// With polling off, only the notification can wake b's watcher
		// in time.
		for i := range 20 {
			_, err := a.Apply(ctx, event(fmt.Sprintf("from a %d", i)))
			require.NoError(t, err)
		}
		got := storetest.Collect(t, w, 20)
		for i, ev := range got {
			require.Equal(t, uint64(i+1), ev.Seq)
			require.Equal(t, fmt.Sprintf("from a %d", i), ev.Message)
		}
	})

	t.Run("GapFreeAcrossStores", func(t *testing.T) {
		var stores []*postgres.Store
		for range 3 {
			stores = append(stores, MustOpen(t, db.dsn, postgres.Options{Schema: "gap_free"}))
		}
		w, err := stores[2].Watch(ctx, 1, state.EventFilter{})
		require.NoError(t, err)
		defer w.Close()
		const writers, each = 4, 25
		var wg sync.WaitGroup
		errs := make(chan error, len(stores)*writers)
		for i, s := range stores {
			for j := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range each {
						if _, err := s.Apply(ctx, &state.Batch{Events: []state.Event{
							{Type: state.EventSync, Message: fmt.Sprintf("s%d w%d %d a", i, j, k)},
							{Type: state.EventSync, Message: fmt.Sprintf("s%d w%d %d b", i, j, k)},
						}}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		total := len(stores) * writers * each * 2
		got := storetest.Collect(t, w, total)
		for i, ev := range got {
			require.Equal(t, uint64(i+1), ev.Seq)
			if i%2 == 1 {
				require.Equal(t, strings.TrimSuffix(got[i-1].Message, " a")+" b", ev.Message, "a batch's events are adjacent")
			}
		}
	})

	t.Run("Fencing", func(t *testing.T) {
		s := MustOpen(t, db.dsn, postgres.Options{Schema: "fencing"})
		db.pg.Exec(t, db.db, "INSERT INTO fencing.leases VALUES ('leader', 'r1', 7, now() + interval '1 hour')")
		fenced := func(token uint64) context.Context {
			return state.WithFence(ctx, state.Fence{Lease: "leader", Token: token})
		}
		_, err := s.Apply(fenced(7), event("by the leader"))
		require.NoError(t, err)

		// A replica took the lease over: token 8.
		db.pg.Exec(t, db.db, "UPDATE fencing.leases SET holder = 'r2', token = 8")
		before, err := s.EventBounds(ctx)
		require.NoError(t, err)
		_, err = s.Apply(fenced(7), event("by the deposed leader"))
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		require.Contains(t, state.ErrorMessage(err), "token 7")
		// In the same group as a fenced-out batch, others still commit.
		_, err = s.Apply(ctx, event("unfenced"))
		require.NoError(t, err)

		// An expired lease fences out its own holder too.
		db.pg.Exec(t, db.db, "UPDATE fencing.leases SET expires_at = now() - interval '1 second'")
		_, err = s.Apply(fenced(8), event("too late"))
		require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
		after, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Equal(t, before.Latest+1, after.Latest, "only the unfenced write was written")
	})

	t.Run("NoPasswordInErrors", func(t *testing.T) {
		// Wrong password, and a port where nothing listens: the errors
		// name the database but never carry the password.
		wrong := strings.Replace(db.dsn, ":"+db.pg.Password+"@", ":hunter2-secret@", 1)
		_, err := postgres.Open(ctx, wrong, postgres.Options{Schema: "nopw"})
		require.Error(t, err)
		require.NotContains(t, err.Error(), "hunter2-secret")
		require.Contains(t, err.Error(), "127.0.0.1")

		down := strings.Replace(db.dsn, fmt.Sprintf(":%d/", db.pg.Port), ":1/", 1)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = postgres.Open(cctx, down, postgres.Options{Schema: "nopw"})
		require.Error(t, err)
		require.Equal(t, state.EUNAVAILABLE, state.ErrorCode(err), "%v", err)
		require.NotContains(t, err.Error(), db.pg.Password)

		_, err = postgres.Open(ctx, "postgres://tink:hunter2-secret@127.0.0.1:notaport/x", postgres.Options{})
		require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
		require.NotContains(t, err.Error(), "hunter2-secret")
	})
}

// TestDatabaseRestart restarts PostgreSQL under a store: while it is down
// calls fail with EUNAVAILABLE and Ping says so; afterwards the same store
// works again without being reopened, and its watcher resumes without a gap.
func TestDatabaseRestart(t *testing.T) {
	db := newSharedDB(t)
	ctx := context.Background()
	s := MustOpen(t, db.dsn, postgres.Options{PollInterval: 200 * time.Millisecond})
	w, err := s.Watch(ctx, 1, state.EventFilter{})
	require.NoError(t, err)
	defer w.Close()
	for i := range 5 {
		_, err := s.Apply(ctx, event(fmt.Sprint("before ", i)))
		require.NoError(t, err)
	}
	require.NoError(t, s.Ping(ctx))

	db.pg.Stop(t)
	err = s.Ping(ctx)
	require.Equal(t, state.EUNAVAILABLE, state.ErrorCode(err), "%v", err)
	_, err = s.Apply(ctx, event("while down"))
	require.Equal(t, state.EUNAVAILABLE, state.ErrorCode(err), "%v", err)
	require.NotContains(t, err.Error(), db.pg.Password)
	db.pg.Resume(t)

	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 30*time.Second, 100*time.Millisecond)
	var applied bool
	for range 50 { // the pool may hand out a connection that died with the server first
		if _, err := s.Apply(ctx, event("after")); err == nil {
			applied = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, applied)
	got := storetest.Collect(t, w, 6)
	for i, ev := range got {
		require.Equal(t, uint64(i+1), ev.Seq)
	}
	require.Equal(t, "after", got[5].Message)
}
