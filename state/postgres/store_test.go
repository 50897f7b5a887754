package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
	"github.com/tinkops/tinkops/state/storetest"
)

// TestStore runs the contract suite against PostgreSQL: one cluster, a
// schema per store. The watch ring is tiny so that the suite's watchers
// also exercise reading the log from the table.
func TestStore(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	n := 0
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) state.Store {
		n++
		return MustOpen(t, dsn, postgres.Options{
			Schema:      fmt.Sprintf("store%d", n),
			Retention:   cfg.Retention,
			Now:         cfg.Now,
			WatchBuffer: 64,
		})
	})
}

// MustOpen opens a store on dsn and closes it when the test ends.
func MustOpen(tb testing.TB, dsn string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CompactInterval == 0 {
		opts.CompactInterval = -1 // tests compact explicitly
	}
	s, err := postgres.Open(context.Background(), dsn, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}
