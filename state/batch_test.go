package state_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func TestBatchValidate(t *testing.T) {
	obj := func(name string) *state.Object {
		return &state.Object{Kind: state.KindHardware, Name: name, Source: state.SourceGit, Spec: json.RawMessage(`{}`)}
	}
	run := func(wf string, n int) *state.WorkflowRun {
		return &state.WorkflowRun{Workflow: wf, Number: n, State: state.RunPending}
	}
	ok := &state.Batch{}
	ok.Put(obj("a"), "")
	ok.Delete(state.ObjectKey{Kind: state.KindHardware, Name: "b"}, 0, "")
	ok.Runs = []*state.WorkflowRun{run("wf", 1), run("wf", 2)}
	require.NoError(t, ok.Validate())

	for _, tt := range []struct {
		name  string
		batch func() *state.Batch
		want  string
	}{
		{"ErrEmpty", func() *state.Batch { return &state.Batch{} }, "empty batch"},
		{"ErrNilObject", func() *state.Batch { return &state.Batch{Objects: []state.ObjectOp{{}}} }, "object 0 is nil"},
		{"ErrDuplicateObject", func() *state.Batch {
			b := &state.Batch{}
			b.Put(obj("a"), "")
			b.Put(obj("a"), "")
			return b
		}, "Hardware/a: appears twice"},
		{"ErrDuplicateRun", func() *state.Batch {
			return &state.Batch{Runs: []*state.WorkflowRun{run("wf", 1), run("wf", 1)}}
		}, "Workflow/wf#1: appears twice"},
		{"ErrInvalidObject", func() *state.Batch {
			b := &state.Batch{}
			o := obj("a")
			o.Source = ""
			b.Put(o, "")
			return b
		}, "Hardware/a: source"},
		{"ErrInvalidDeleteKey", func() *state.Batch {
			b := &state.Batch{}
			b.Delete(state.ObjectKey{Kind: state.KindHardware}, 0, "")
			return b
		}, "name is empty"},
		{"ErrEventType", func() *state.Batch { return &state.Batch{Events: []state.Event{{}}} }, "no type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.batch().Validate()
			require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
			require.Contains(t, state.ErrorMessage(err), tt.want)
		})
	}
}

func TestRunEvents(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	base := &state.WorkflowRun{Workflow: "wf-7", Number: 2, State: state.RunPending, Actions: []state.RunAction{
		{Task: "os", Name: "stream", State: state.RunPending},
		{Task: "os", Name: "kexec", State: state.RunPending},
	}}
	with := func(mutate func(r *state.WorkflowRun)) *state.WorkflowRun {
		r := *base
		r.Actions = append([]state.RunAction(nil), base.Actions...)
		mutate(&r)
		return &r
	}
	for _, tt := range []struct {
		name     string
		old, new *state.WorkflowRun
		want     []string
	}{
		{"Created", nil, base, []string{"run-state Workflow/wf-7#2: PENDING"}},
		{"NoChange", base, base, nil},
		{"RunAndAction", base, with(func(r *state.WorkflowRun) {
			r.State = state.RunRunning
			r.Actions[0].State = state.RunRunning
			r.Actions[0].Attempt = 1
		}), []string{"run-state Workflow/wf-7#2: PENDING -> RUNNING", "action-state Workflow/wf-7#2: action os/stream: RUNNING"}},
		{"Retry", with(func(r *state.WorkflowRun) { r.Actions[1].State = state.RunFailed; r.Actions[1].Attempt = 1 }),
			with(func(r *state.WorkflowRun) {
				r.Actions[1].State = state.RunRunning
				r.Actions[1].Attempt = 2
				r.Actions[1].Message = "retrying"
			}), []string{"action-state Workflow/wf-7#2: action os/kexec: RUNNING (attempt 2): retrying"}},
		{"Reason", base, with(func(r *state.WorkflowRun) { r.State = state.RunCancelled; r.Reason = "cancelled by alice" }),
			[]string{"run-state Workflow/wf-7#2: PENDING -> CANCELLED: cancelled by alice"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ev := range state.RunEvents(tt.old, tt.new, state.ActorReconciler, "", now) {
				require.Equal(t, "wf-7", ev.Name)
				require.Equal(t, 2, ev.Run)
				require.Equal(t, now, ev.Time)
				got = append(got, string(ev.Type)+" "+ev.Message)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRetentionDefaults(t *testing.T) {
	require.Equal(t, state.Retention{MaxEvents: state.DefaultMaxEvents, MaxAge: state.DefaultMaxAge}, state.Retention{}.WithDefaults())
	require.Equal(t, state.Retention{MaxEvents: 0, MaxAge: time.Hour}, state.Retention{MaxEvents: -1, MaxAge: time.Hour}.WithDefaults(), "negative means no limit")
}
