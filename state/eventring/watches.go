package eventring

import (
	"context"
	"sync"

	"github.com/tinkops/tinkops/state"
)

// Watches starts a store's watchers and refuses new ones once the store
// closes. Its lock orders registering a watcher against Close, so that no
// watcher starts after Close waited for the store's background work. The
// zero value is ready to use.
type Watches struct {
	mu     sync.Mutex
	closed bool
}

// Start runs a watcher that follows h from sequence number from, with its
// goroutine counted in bg. It ends when the caller's ctx ends, when storeCtx
// (cancelled first by the store's Close) ends, or when it is closed. where
// names the store in errors.
func (ws *Watches) Start(ctx, storeCtx context.Context, bg *sync.WaitGroup, h *Ring, from uint64, filter state.EventFilter, where string, readLog ReadLog) (state.Watcher, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := NewWatcher(filter, cancel, "state store "+where+" closed")
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		cancel()
		return nil, state.Errorf(state.EINTERNAL, "state store %s is closed", where)
	}
	bg.Add(1)
	ws.mu.Unlock()
	stop := context.AfterFunc(storeCtx, cancel)
	go func() {
		defer bg.Done()
		defer stop()
		w.Run(wctx, ctx, h, from, readLog)
	}()
	return w, nil
}

// Close refuses every later Start; call it before waiting for the
// watchers.
func (ws *Watches) Close() {
	ws.mu.Lock()
	ws.closed = true
	ws.mu.Unlock()
}
