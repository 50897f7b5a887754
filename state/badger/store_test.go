package badger_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
	"github.com/tinkops/tinkops/state/storetest"
)

// TestStore runs the contract suite against Badger. The watch ring is tiny
// so that the suite's watchers also exercise reading the log from disk.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) state.Store {
		return MustOpen(t, t.TempDir(), badger.Options{
			Retention:   cfg.Retention,
			Now:         cfg.Now,
			WatchBuffer: 64,
		})
	})
}

// MustOpen opens a store in dir and closes it when the test ends.
func MustOpen(tb testing.TB, dir string, opts badger.Options) *badger.Store {
	tb.Helper()
	if opts.CompactInterval == 0 {
		opts.CompactInterval = -1 // tests compact explicitly
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = -1
	}
	s, err := badger.Open(context.Background(), dir, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}
