package badger

import (
	"context"

	"github.com/tinkops/tinkops/state"
)

// Watching: the writer publishes committed events to an eventring.Ring,
// whose watchers read the log from disk (readLog) when they are behind it.
// Events reach the ring only after they are on disk, so the disk always has
// whatever the ring lacks. The writer never waits for a watcher.

// Watch implements state.Store.
func (s *Store) Watch(ctx context.Context, from uint64, filter state.EventFilter) (state.Watcher, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	if from == 0 {
		from = s.hub.Next()
	} else if oldest := s.oldest.Load(); from < oldest {
		return nil, compacted(from, oldest)
	}

	return s.watches.Start(ctx, s.ctx, &s.bg, s.hub, from, filter, s.dir, s.readLog)
}

func compacted(from, oldest uint64) error {
	return state.Errorf(state.ENOTFOUND,
		"events before %d were removed by retention (asked from %d); resume from %d", oldest, from, oldest)
}
