package badger

import (
	"context"

	"github.com/tinkops/tinkops/state"
)

// OpenWithHook is Open with a hook called at named points of split commits
// ("split:staged", "split:marked", "split:applied:N", "split:done") and of
// recovery ("recover:applied:N"), so that tests can crash the process there.
func OpenWithHook(ctx context.Context, dir string, opts Options, hook func(point string)) (*Store, error) {
	return open(ctx, dir, opts, hook)
}

// CachedRun returns the writer's cached copy of run key, nil when it has
// none. Call it only when no write is in flight: the last Apply's answer
// orders it after the writer's work.
func CachedRun(s *Store, key state.RunKey) *state.WorkflowRun { return s.w.runs[key] }

// MaxCachedRuns is how many runs the writer caches at most.
const MaxCachedRuns = maxCachedRuns

// OtherType is otherType, for its edge cases.
var OtherType = otherType

// AppendRun and AppendEvent are the writer's record encoders.
var (
	AppendRun   = appendRun
	AppendEvent = appendEvent
)

// OtherState is otherState, for its edge cases.
func OtherState(v []byte, states []state.RunState) bool {
	other, _ := otherState(nil, v, states)
	return other
}

// Pack is a record's stored form (packed when that makes it smaller).
func Pack(record []byte) []byte {
	var scratch []byte
	return pack(&scratch, record)
}
