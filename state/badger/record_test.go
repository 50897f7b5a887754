package badger_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// The writer encodes runs and events itself (record.go); what it writes
// must be exactly what json.Marshal writes.

// recordStrings are strings of every kind encoding/json treats apart.
var recordStrings = []string{"", "plain", "node-0001", "52:54:00:01:00:01", `quote " and \ backslash`, "<b>&amp;</b>",
	"tab\tnew\nline\rcr", "\b\f\x00\x1f\x7f", "ünïcödé ✓", "bad \xff utf-8 \xc3", "sep \u2028 \u2029", "emoji 🚀", "a/b?c=d"}

// recordTimes are times of every kind: zero, UTC, zones with and without
// minutes, nanoseconds, monotonic readings, the edges of what
// time.MarshalJSON accepts, and beyond them.
var recordTimes = []time.Time{
	{}, time.Now(), time.Now().UTC(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 5*3600+30*60)),
	time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("y", -8*3600)),
	time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("s", 3600+17)),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", -23*3600-59*60)),
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomStrings(r *rand.Rand) []string {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, 1+r.IntN(3))
	for i := range out {
		out[i] = pick(r, recordStrings)
	}
	return out
}

func randomRun(r *rand.Rand) *state.WorkflowRun {
	run := &state.WorkflowRun{Namespace: pick(r, recordStrings), Workflow: pick(r, recordStrings), Number: r.IntN(3) - 1,
		State: state.RunState(pick(r, recordStrings)), Template: pick(r, recordStrings), Hardware: pick(r, recordStrings),
		Revision: pick(r, recordStrings), Machines: randomStrings(r), CurrentAction: r.IntN(5) - 1,
		GlobalTimeout: int64(r.IntN(3) - 1), Deadline: pick(r, recordTimes), Reason: pick(r, recordStrings),
		ResourceVersion: r.Uint64() >> r.IntN(64), CreatedAt: pick(r, recordTimes), UpdatedAt: pick(r, recordTimes),
		StartedAt: pick(r, recordTimes), FinishedAt: pick(r, recordTimes)}
	if r.IntN(3) > 0 {
		run.AllowPXE = new(r.IntN(2) == 0)
	}
	if r.IntN(4) > 0 {
		run.Actions = []state.RunAction{}
		for range r.IntN(4) {
			a := state.RunAction{Task: pick(r, recordStrings), Name: pick(r, recordStrings), Image: pick(r, recordStrings),
				Timeout: int64(r.IntN(3) - 1), Command: randomStrings(r), Volumes: randomStrings(r), Pid: pick(r, recordStrings),
				Retries: r.IntN(3) - 1, Background: r.IntN(2) == 0, Worker: pick(r, recordStrings), State: state.RunState(pick(r, recordStrings)),
				Attempt: r.IntN(3) - 1, StartedAt: pick(r, recordTimes), FinishedAt: pick(r, recordTimes), Deadline: pick(r, recordTimes),
				Message: pick(r, recordStrings)}
			switch r.IntN(3) {
			case 1:
				a.Environment = map[string]string{}
			case 2:
				a.Environment = map[string]string{pick(r, recordStrings): pick(r, recordStrings), pick(r, recordStrings): pick(r, recordStrings), "Z": "z", "a": "A"}
			}
			run.Actions = append(run.Actions, a)
		}
	}
	return run
}

func randomEvent(r *rand.Rand) *state.Event {
	return &state.Event{Seq: r.Uint64() >> r.IntN(64), Time: pick(r, recordTimes), Type: state.EventType(pick(r, recordStrings)),
		Kind: pick(r, recordStrings), Namespace: pick(r, recordStrings), Name: pick(r, recordStrings), Run: r.IntN(3) - 1,
		Action: pick(r, recordStrings), State: state.RunState(pick(r, recordStrings)), Attempt: r.IntN(3) - 1,
		ResourceVersion: r.Uint64() >> r.IntN(64), Message: pick(r, recordStrings), Revision: pick(r, recordStrings),
		Actor: state.Actor(pick(r, recordStrings)), Author: pick(r, recordStrings), Committer: pick(r, recordStrings)}
}

// requireAsJSON fails unless enc gives json.Marshal's bytes for v, or
// declines (ok false) exactly where json.Marshal fails.
func requireAsJSON(t *testing.T, v any, got []byte, ok bool) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		require.False(t, ok, "json.Marshal refuses it (%v), the encoder did not", err)
		return
	}
	require.True(t, ok, "the encoder declined what json.Marshal encodes: %s", want)
	require.Equal(t, string(want), string(got))
}

// TestRecordsMatchJSON encodes thousands of runs and events made of every
// kind of string, time, empty and nil value, and compares with
// json.Marshal byte for byte.
func TestRecordsMatchJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	declined := 0
	for range 5000 {
		run := randomRun(r)
		got, ok := badger.AppendRun([]byte("prefix"), run)
		require.True(t, strings.HasPrefix(string(got), "prefix"))
		requireAsJSON(t, run, got[len("prefix"):], ok)
		ev := randomEvent(r)
		got, ok = badger.AppendEvent(nil, ev)
		requireAsJSON(t, ev, got, ok)
		if !ok {
			declined++
		}
	}
	require.Positive(t, declined, "times json.Marshal refuses were tried")
}

// TestRecordFields fails when a field is added to a run, an action or an
// event (or its JSON name changes) without the record encoder learning it:
// the encoder would leave the field out of the store.
func TestRecordFields(t *testing.T) {
	fields := func(v any) string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			out = append(out, f.Name+" "+f.Type.String()+" "+f.Tag.Get("json"))
		}
		return strings.Join(out, "\n")
	}
	require.Equal(t, `Namespace string namespace,omitempty
Workflow string workflow
Number int number
State state.RunState state
Template string template,omitempty
Hardware string hardware,omitempty
Revision string revision,omitempty
Machines []string machines,omitempty
Actions []state.RunAction actions
CurrentAction int currentAction
GlobalTimeout int64 globalTimeout,omitempty
Deadline time.Time deadline,omitzero
Reason string reason,omitempty
AllowPXE *bool allowPXE,omitempty
ResourceVersion uint64 resourceVersion
CreatedAt time.Time createdAt
UpdatedAt time.Time updatedAt
StartedAt time.Time startedAt,omitzero
FinishedAt time.Time finishedAt,omitzero`, fields(state.WorkflowRun{}), "a run's fields changed: teach record.go (appendRun) first")
	require.Equal(t, `Task string task
Name string name
Image string image
Timeout int64 timeout,omitempty
Command []string command,omitempty
Environment map[string]string environment,omitempty
Volumes []string volumes,omitempty
Pid string pid,omitempty
Retries int retries,omitempty
Background bool background,omitempty
Worker string worker
State state.RunState state
Attempt int attempt,omitempty
StartedAt time.Time startedAt,omitzero
FinishedAt time.Time finishedAt,omitzero
Deadline time.Time deadline,omitzero
Message string message,omitempty`, fields(state.RunAction{}), "an action's fields changed: teach record.go (action) first")
	require.Equal(t, `Seq uint64 seq
Time time.Time time
Type state.EventType type
Kind string kind,omitempty
Namespace string namespace,omitempty
Name string name,omitempty
Run int run,omitempty
Action string action,omitempty
State state.RunState state,omitempty
Attempt int attempt,omitempty
ResourceVersion uint64 resourceVersion,omitempty
Message string message
Revision string revision,omitempty
Actor state.Actor actor
Author string author,omitempty
Committer string committer,omitempty`, fields(state.Event{}), "an event's fields changed: teach record.go (appendEvent) first")
}
