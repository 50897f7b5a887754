package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func newRun(workflow string, number int) *state.WorkflowRun {
	return &state.WorkflowRun{
		Workflow:      workflow,
		Number:        number,
		State:         state.RunPending,
		Template:      "ubuntu",
		Hardware:      "node-01",
		GlobalTimeout: 3600,
		Actions: []state.RunAction{
			{Task: "os", Name: "stream-image", Image: "quay.io/tinkerbell/actions/image2disk:latest", Timeout: 600, Worker: "00:00:00:00:00:01", State: state.RunPending,
				Environment: map[string]string{"DEST_DISK": "/dev/sda", "COMPRESSED": "true"}},
			{Task: "os", Name: "kexec", Image: "quay.io/tinkerbell/actions/kexec:latest", Timeout: 90, Worker: "00:00:00:00:00:01", State: state.RunPending, Pid: "host"},
		},
	}
}

func testRuns(t *testing.T, open Opener) {
	ctx := context.Background()
	worker := state.Worker("node-01")

	t.Run("Lifecycle", func(t *testing.T) {
		s, clock := openDefault(t, open)
		r1, err := s.PutRun(ctx, state.ActorReconciler, newRun("wf-7", 1))
		require.NoError(t, err)
		require.NotZero(t, r1.ResourceVersion)

		clock.Advance(time.Second)
		next := *r1
		next.Actions = append([]state.RunAction(nil), r1.Actions...)
		next.State = state.RunRunning
		next.StartedAt = clock.Now()
		next.Reason = "worker connected"
		next.Actions[0].State = state.RunRunning
		next.Actions[0].Attempt = 1
		next.Actions[0].StartedAt = clock.Now()
		r2, err := s.PutRun(ctx, worker, &next)
		require.NoError(t, err)
		require.Greater(t, r2.ResourceVersion, r1.ResourceVersion)
		require.Equal(t, r1.CreatedAt, r2.CreatedAt)

		got, err := s.GetRun(ctx, state.RunKey{Workflow: "wf-7", Number: 1})
		require.NoError(t, err)
		require.Equal(t, state.RunRunning, got.State)
		require.Equal(t, r2.ResourceVersion, got.ResourceVersion)
		require.Equal(t, "true", got.Actions[0].Environment["COMPRESSED"])
		require.Equal(t, state.RunRunning, got.Actions[0].State)
		require.Equal(t, 1, got.Actions[0].Attempt)
		require.Equal(t, int64(3600), got.GlobalTimeout)

		evs, err := s.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "wf-7"}})
		require.NoError(t, err)
		require.Len(t, evs, 3, "created (run-state), then run-state and one action-state")
		require.Equal(t, state.EventRunState, evs[0].Type)
		require.Equal(t, state.ActorReconciler, evs[0].Actor)
		require.Equal(t, 1, evs[0].Run)
		require.Equal(t, state.EventRunState, evs[1].Type)
		require.Contains(t, evs[1].Message, "PENDING -> RUNNING")
		require.Contains(t, evs[1].Message, "worker connected")
		require.Equal(t, state.EventActionState, evs[2].Type)
		require.Equal(t, "stream-image", evs[2].Action)
		require.Equal(t, worker, evs[2].Actor)
	})

	t.Run("ErrConflict", func(t *testing.T) {
		s, _ := openDefault(t, open)
		r1, err := s.PutRun(ctx, state.ActorReconciler, newRun("wf-7", 1))
		require.NoError(t, err)
		_, err = s.PutRun(ctx, state.ActorReconciler, newRun("wf-7", 1))
		requireCode(t, err, state.ECONFLICT, "creating an existing run")

		upd := *r1
		upd.State = state.RunRunning
		_, err = s.PutRun(ctx, worker, &upd)
		require.NoError(t, err)
		// A second report based on the same version is stale.
		upd.State = state.RunFailed
		_, err = s.PutRun(ctx, worker, &upd)
		requireCode(t, err, state.ECONFLICT)
		require.Contains(t, state.ErrorMessage(err), "Workflow/wf-7#1")
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s, _ := openDefault(t, open)
		_, err := s.GetRun(ctx, state.RunKey{Workflow: "wf-7", Number: 3})
		requireCode(t, err, state.ENOTFOUND)
		require.Contains(t, state.ErrorMessage(err), "Workflow/wf-7#3")
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for name, mutate := range map[string]func(r *state.WorkflowRun){
			"ErrNumberZero":    func(r *state.WorkflowRun) { r.Number = 0 },
			"ErrNoWorkflow":    func(r *state.WorkflowRun) { r.Workflow = "" },
			"ErrState":         func(r *state.WorkflowRun) { r.State = "DONE" },
			"ErrActionState":   func(r *state.WorkflowRun) { r.Actions[1].State = state.RunPreparing },
			"ErrCurrentAction": func(r *state.WorkflowRun) { r.CurrentAction = 3 },
		} {
			t.Run(name, func(t *testing.T) {
				r := newRun("wf-7", 1)
				mutate(r)
				_, err := s.PutRun(ctx, state.ActorReconciler, r)
				requireCode(t, err, state.EINVALID)
			})
		}
	})

	t.Run("List", func(t *testing.T) {
		s, _ := openDefault(t, open)
		put := func(ns, wf string, n int, st state.RunState) {
			r := newRun(wf, n)
			r.Namespace = ns
			r.State = st
			_, err := s.PutRun(ctx, state.ActorReconciler, r)
			require.NoError(t, err)
		}
		// Run 10 sorts after run 2: numbers are compared as numbers.
		put("", "wf-a", 10, state.RunSuccess)
		put("", "wf-a", 2, state.RunFailed)
		put("", "wf-a", 11, state.RunRunning)
		put("", "wf-ab", 1, state.RunRunning)
		put("prod", "wf-a", 1, state.RunPending)

		keys := func(runs []*state.WorkflowRun) []string {
			var out []string
			for _, r := range runs {
				out = append(out, r.Key().String())
			}
			return out
		}
		page, err := s.ListRuns(ctx, state.RunQuery{Workflow: "wf-a"})
		require.NoError(t, err)
		require.Equal(t, []string{"Workflow/wf-a#2", "Workflow/wf-a#10", "Workflow/wf-a#11"}, keys(page.Runs))

		page, err = s.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunRunning, state.RunPending}})
		require.NoError(t, err)
		require.Equal(t, []string{"Workflow/wf-a#11", "Workflow/wf-ab#1", "Workflow/prod/wf-a#1"}, keys(page.Runs))

		page, err = s.ListRuns(ctx, state.RunQuery{Namespace: "prod"})
		require.NoError(t, err)
		require.Equal(t, []string{"Workflow/prod/wf-a#1"}, keys(page.Runs))

		var all []string
		q := state.RunQuery{Limit: 2}
		for {
			page, err := s.ListRuns(ctx, q)
			require.NoError(t, err)
			all = append(all, keys(page.Runs)...)
			if page.Continue == "" {
				break
			}
			q.Continue = page.Continue
		}
		require.Len(t, all, 5)
	})
}
