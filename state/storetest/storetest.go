// Package storetest is the contract test suite for state.Store: every
// implementation runs it (from its own tests) and must pass it unchanged, so
// that a second backend behaves exactly like the first.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// Config is what a test asks of the store it opens.
type Config struct {
	// Retention is the event retention the store must apply in
	// CompactEvents.
	Retention state.Retention
	// Now is the clock the store must use for object and event times and
	// for retention by age.
	Now func() time.Time
}

// Opener returns a new, empty store configured by cfg. It must arrange for
// the store to be closed when the test ends (t.Cleanup); the suite may close
// it earlier, so Close must be idempotent.
type Opener func(t *testing.T, cfg Config) state.Store

// Run runs the whole contract suite. Subtests are independent and each opens
// its own store.
func Run(t *testing.T, open Opener) {
	t.Run("Object", func(t *testing.T) { testObjects(t, open) })
	t.Run("List", func(t *testing.T) { testList(t, open) })
	t.Run("Run", func(t *testing.T) { testRuns(t, open) })
	t.Run("Apply", func(t *testing.T) { testApply(t, open) })
	t.Run("Events", func(t *testing.T) { testEvents(t, open) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("Close", func(t *testing.T) { testClose(t, open) })
}

// Clock is a manual clock for Config.Now. Its zero value starts at a fixed
// instant, so test output does not depend on when the test ran.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.Now()
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// openDefault opens a store with default retention and a manual clock.
func openDefault(t *testing.T, open Opener) (state.Store, *Clock) {
	t.Helper()
	clock := &Clock{}
	return open(t, Config{Now: clock.Now}), clock
}

func hardware(name string, labels map[string]string) *state.Object {
	return &state.Object{
		Kind:     state.KindHardware,
		Name:     name,
		Labels:   labels,
		Spec:     json.RawMessage(`{"interfaces":[{"dhcp":{"mac":"00:00:00:00:00:01"}}]}`),
		Source:   state.SourceGit,
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567",
		File:     "hardware/" + name + ".yaml",
	}
}

func mustPut(t *testing.T, s state.Store, obj *state.Object) *state.Object {
	t.Helper()
	out, err := s.PutObject(context.Background(), state.ActorGit, obj)
	require.NoError(t, err)
	return out
}

func requireCode(t *testing.T, err error, code string, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, code, state.ErrorCode(err), "error %v", err)
}

// requireContiguous checks that events are numbered from first, one by one.
func requireContiguous(t *testing.T, evs []state.Event, first uint64) {
	t.Helper()
	for i, ev := range evs {
		require.Equal(t, first+uint64(i), ev.Seq, "event %d of %d", i, len(evs))
	}
}

// appendEvents appends n sync events, one batch each, and returns them.
func appendEvents(t *testing.T, s state.Store, n int, tag string) []state.Event {
	t.Helper()
	var out []state.Event
	for i := range n {
		res, err := s.Apply(context.Background(), &state.Batch{
			Actor:  state.ActorReconciler,
			Events: []state.Event{{Type: state.EventSync, Message: fmt.Sprintf("%s %d", tag, i)}},
		})
		require.NoError(t, err)
		out = append(out, res.Events...)
	}
	return out
}

func names(objs []*state.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key().String()
	}
	return out
}

// Collect reads n events from w, failing the test if they take more than
// 30 seconds, for a backend's own watch tests.
func Collect(t *testing.T, w state.Watcher, n int) []state.Event {
	t.Helper()
	return collect(t, w, n)
}
