package badger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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

// TestWatchFromLogSkipsOtherKinds: a watcher behind the ring reads the
// log, passing over the events its kind or types rule out without
// decoding them; it must deliver exactly, and in order, what decoding
// every event and filtering it selects: across a stretch of unselected
// events longer than one read passes over, past store-wide events that
// have no kind, and whatever the messages say.
func TestWatchFromLogSkipsOtherKinds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := MustOpen(t, t.TempDir(), badger.Options{WatchBuffer: 16})
	tricky := []string{`"kind":"Workflow"`, `x","kind":"Hardware`, `\"kind\":\"Workflow\"`, "plain"}
	write := func(kind string, n int) {
		for done := 0; done < n; {
			b := &state.Batch{Actor: state.ActorReconciler}
			for ; done < n && len(b.Events) < 5000; done++ {
				b.Events = append(b.Events, state.Event{Type: state.EventBMC, Kind: kind, Name: fmt.Sprintf("%s-%d", kind, done),
					Message: tricky[done%len(tricky)]})
			}
			_, err := s.Apply(ctx, b)
			require.NoError(t, err)
		}
	}
	write(state.KindWorkflow, 3)
	write(state.KindHardware, 20_000) // more than a read passes over (skipFactor * 256)
	write("", 2)                      // store-wide: no kind
	write(state.KindWorkflow, 5)
	write(state.KindHardware, 10)
	var all []state.Event
	for from := uint64(1); ; {
		page, err := s.Events(ctx, state.EventQuery{From: from, Limit: 5000})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		from = page[len(page)-1].Seq + 1
	}
	require.Len(t, all, 20_020)
	for _, f := range []state.EventFilter{
		{Kind: state.KindWorkflow},
		{Kind: state.KindWorkflow, Types: []state.EventType{state.EventBMC}},
		{Kind: state.KindWorkflow, Types: []state.EventType{state.EventSync}},
		{Kind: state.KindHardware, Name: "Hardware-19999", Namespace: ""},
	} {
		var want []state.Event
		for _, ev := range all {
			if f.Matches(ev) {
				want = append(want, ev)
			}
		}
		w, err := s.Watch(ctx, 1, f)
		require.NoError(t, err)
		var got []state.Event
		for len(got) < len(want) {
			select {
			case ev := <-w.Events():
				got = append(got, ev)
			case <-ctx.Done():
				t.Fatalf("filter %+v: %d of %d events: %v", f, len(got), len(want), w.Err())
			}
		}
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		require.JSONEq(t, string(wantJSON), string(gotJSON), "filter %+v", f)
		require.NoError(t, w.Close())
	}
}
