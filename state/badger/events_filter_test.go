package badger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestEventsTypeFilter: Events with a type filter skips records of other
// types without decoding them; it must return exactly what decoding every
// record and filtering it returns, whatever the messages say (here: the
// very text the skip looks for).
func TestEventsTypeFilter(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{})
	tricky := []string{`"type":"run-state"`, `x","type":"sync`, `\"type\":\"bmc\"`, "plain", `"type":"`}
	types := []state.EventType{state.EventSync, state.EventBMC, state.EventError, state.EventNetboot, state.EventAgent}
	for i := range 40 {
		b := &state.Batch{Actor: state.ActorReconciler, Revision: tricky[i%len(tricky)]}
		b.Events = append(b.Events, state.Event{Type: types[i%len(types)], Kind: state.KindHardware, Name: fmt.Sprintf("hw-%d", i),
			Message: tricky[(i+1)%len(tricky)], Author: tricky[(i+2)%len(tricky)]})
		if i%3 == 0 {
			r := cacheRun("", fmt.Sprintf("wf-%d", i), 2)
			r.Reason = tricky[i%len(tricky)]
			r.Actions[0].State, r.Actions[0].Attempt, r.Actions[0].Message = state.RunRunning, 1, tricky[(i+3)%len(tricky)]
			b.Runs = append(b.Runs, r)
		}
		_, err := s.Apply(ctx, b)
		require.NoError(t, err)
	}
	all, err := s.Events(ctx, state.EventQuery{})
	require.NoError(t, err)
	filters := [][]state.EventType{
		{state.EventRunState}, {state.EventActionState}, {state.EventSync}, {state.EventBMC, state.EventRunState},
		{state.EventError, state.EventAgent, state.EventNetboot}, {"no-such-type"},
	}
	for _, types := range filters {
		f := state.EventFilter{Types: types}
		var want []state.Event
		for _, ev := range all {
			if f.Matches(ev) {
				want = append(want, ev)
			}
		}
		got, err := s.Events(ctx, state.EventQuery{Filter: f})
		require.NoError(t, err)
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		require.JSONEq(t, string(wantJSON), string(gotJSON), "types %v", types)
		if types[0] != "no-such-type" {
			require.NotEmpty(t, got, "types %v", types)
		}
	}
}

// TestOtherType: a record is skipped only when its type is plainly
// another; anything unexpected is decoded.
func TestOtherType(t *testing.T) {
	run := []state.EventType{state.EventRunState}
	for _, c := range []struct {
		record string
		other  bool
	}{
		{`{"seq":1,"time":"2026-01-01T00:00:00Z","type":"action-state","message":"m"}`, true},
		{`{"seq":1,"time":"2026-01-01T00:00:00Z","type":"run-state","message":"m"}`, false},
		{`{"seq":1,"message":"\"type\":\"action-state\"","type":"run-state"}`, false},
		{`{"seq":1,"type":"run-\u0073tate"}`, false}, // an escape: decoded
		{`{"seq":1,"kind":"Workflow"}`, false},       // no type: decoded
		{`{"seq":1,"type":"run-state`, false},        // cut short: decoded
		{`{"seq":1,"type":"run-stat"}`, true},
	} {
		require.Equal(t, c.other, badger.OtherType([]byte(c.record), run), c.record)
	}
}
