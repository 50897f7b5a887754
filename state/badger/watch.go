package badger

import (
	"context"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/eventring"
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

	wctx, cancel := context.WithCancel(ctx)
	w := eventring.NewWatcher(filter, cancel, "state store "+s.dir+" closed")
	s.watchMu.Lock()
	if s.watchClosed {
		s.watchMu.Unlock()
		cancel()
		return nil, state.Errorf(state.EINTERNAL, "state store %s is closed", s.dir)
	}
	s.bg.Add(1)
	s.watchMu.Unlock()
	stop := context.AfterFunc(s.ctx, cancel)
	go func() {
		defer s.bg.Done()
		defer stop()
		w.Run(wctx, ctx, s.hub, from, s.readLog)
	}()
	return w, nil
}

func compacted(from, oldest uint64) error {
	return state.Errorf(state.ENOTFOUND,
		"events before %d were removed by retention (asked from %d); resume from %d", oldest, from, oldest)
}
