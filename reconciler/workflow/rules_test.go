package workflow

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// TestRules drives each run state rule on its own, with no store, clock
// or engine: start, boot actions, hand-out, worker reports (success,
// failure and timeout with and without retries, background actions,
// repeated and stale reports), timeouts and cancelling.
func TestRules(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hw := &schema.Hardware{Metadata: schema.ObjectMeta{Name: "m1"}}
	other := &schema.Hardware{Metadata: schema.ObjectMeta{Name: "m2"}}
	key := state.RunKey{Workflow: "wf", Number: 1}
	doc := &schema.TemplateDocument{Name: "t", GlobalTimeout: 600, Tasks: []schema.Task{{Name: "os", Worker: "m1", Actions: []schema.Action{
		{Name: "disk", Image: "d", Timeout: 60, Retries: 1},
		{Name: "boot", Image: "b", Timeout: 30},
	}}}}
	tmpl := &schema.Template{Metadata: schema.ObjectMeta{Name: "t"}}
	plain := &schema.Workflow{}
	netboot := &schema.Workflow{Spec: schema.WorkflowSpec{BootOptions: &schema.BootOptions{BootMode: "netboot", ToggleAllowNetboot: true}}}

	pending := func() *state.WorkflowRun {
		return &state.WorkflowRun{Workflow: "wf", Number: 1, State: state.RunPending}
	}
	// begun is a run begin has started for wf.
	begun := func(wf *schema.Workflow) *state.WorkflowRun {
		r := pending()
		begin(r, doc, wf, tmpl, hw, nil, true, now)
		return r
	}
	// running is a RUNNING run whose action cur is on attempt 1, handed
	// out a minute ago; retries sets the first action's retries.
	running := func(cur, retries int) *state.WorkflowRun {
		r := begun(plain)
		for i := range cur {
			r.Actions[i].State, r.Actions[i].Attempt = state.RunSuccess, 1
		}
		r.CurrentAction = cur
		r.Actions[0].Retries = retries
		handOut(r, hw, now.Add(-time.Minute))
		return r
	}
	report := func(action, attempt int, s state.RunState) Report {
		return Report{Workflow: "wf", Run: 1, Action: action, Attempt: attempt, State: s, Message: "out"}
	}
	onReport := func(rep Report, from *schema.Hardware) func(r *state.WorkflowRun) (bool, error) {
		return func(r *state.WorkflowRun) (bool, error) {
			changed, _, err := applyReport(r, key, rep, from, now)
			return changed, err
		}
	}

	for _, tc := range []struct {
		name    string
		run     *state.WorkflowRun
		apply   func(r *state.WorkflowRun) (bool, error)
		changed bool
		code    string // the error's code, "" for none
		check   func(t *testing.T, r *state.WorkflowRun)
	}{{
		name: "pending to running",
		run:  pending(),
		apply: func(r *state.WorkflowRun) (bool, error) {
			begin(r, doc, plain, tmpl, hw, []string{"m3"}, true, now)
			return true, nil
		},
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunRunning, r.State)
			require.Len(t, r.Actions, 2)
			require.Equal(t, state.RunPending, r.Actions[0].State)
			require.Equal(t, now.Add(600*time.Second), r.Deadline)
			require.Equal(t, "started: template t rendered for m1, 2 actions, tasks also on m3", r.Reason)
			require.Nil(t, r.AllowPXE)
		},
	}, {
		name: "pending to preparing when the workflow boots",
		run:  pending(),
		apply: func(r *state.WorkflowRun) (bool, error) {
			begin(r, doc, netboot, tmpl, hw, nil, true, now)
			return true, nil
		},
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunPreparing, r.State)
			require.Equal(t, "preparing: BMC boot actions", r.Reason)
			require.NotNil(t, r.AllowPXE)
			require.True(t, *r.AllowPXE)
		},
	}, {
		name: "pending to running when the engine has no BMC",
		run:  pending(),
		apply: func(r *state.WorkflowRun) (bool, error) {
			begin(r, doc, netboot, tmpl, hw, nil, false, now)
			return true, nil
		},
		changed: true,
		check:   func(t *testing.T, r *state.WorkflowRun) { require.Equal(t, state.RunRunning, r.State) },
	}, {
		name: "pending to success without actions",
		run:  pending(),
		apply: func(r *state.WorkflowRun) (bool, error) {
			begin(r, &schema.TemplateDocument{Name: "t"}, netboot, tmpl, hw, nil, true, now)
			return true, nil
		},
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunSuccess, r.State)
			require.Equal(t, now, r.FinishedAt)
			require.True(t, r.Deadline.IsZero())
		},
	}, {
		name:    "preparing to running",
		run:     begun(netboot),
		apply:   func(r *state.WorkflowRun) (bool, error) { return prepared(r, nil, now), nil },
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunRunning, r.State)
			require.Equal(t, "boot actions done", r.Reason)
		},
	}, {
		name: "preparing to failed with the BMC's message",
		run:  begun(netboot),
		apply: func(r *state.WorkflowRun) (bool, error) {
			return prepared(r, state.Errorf(state.EINVALID, "no BMC secret"), now), nil
		},
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunFailed, r.State)
			require.Equal(t, "boot actions failed: no BMC secret", r.Reason)
		},
	}, {
		name:  "boot actions ending on a run no longer preparing",
		run:   running(0, 0),
		apply: func(r *state.WorkflowRun) (bool, error) { return prepared(r, errors.New("late"), now), nil },
	}, {
		name:    "hand-out starts an attempt",
		run:     begun(plain),
		apply:   func(r *state.WorkflowRun) (bool, error) { return handOut(r, hw, now), nil },
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			a := r.Actions[0]
			require.Equal(t, state.RunRunning, a.State)
			require.Equal(t, 1, a.Attempt)
			require.Equal(t, now.Add(60*time.Second), a.Deadline)
			require.Equal(t, "action disk handed to m1 (attempt 1)", r.Reason)
		},
	}, {
		name:  "hand-out again changes nothing",
		run:   running(0, 0),
		apply: func(r *state.WorkflowRun) (bool, error) { return handOut(r, hw, now), nil },
	}, {
		// An action handed out is RUNNING already, so a RUNNING report on
		// it is the same report again.
		name:  "running report on a running action",
		run:   running(0, 0),
		apply: onReport(report(0, 1, state.RunRunning), hw),
	}, {
		name:    "success moves to the next action",
		run:     running(0, 0),
		apply:   onReport(report(0, 1, state.RunSuccess), hw),
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunSuccess, r.Actions[0].State)
			require.Equal(t, 1, r.CurrentAction)
			require.Equal(t, state.RunRunning, r.State)
		},
	}, {
		name:    "success of the last action ends the run",
		run:     running(1, 0),
		apply:   onReport(report(1, 1, state.RunSuccess), hw),
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunSuccess, r.State)
			require.Equal(t, "every action succeeded", r.Reason)
			require.Equal(t, now, r.FinishedAt)
		},
	}, {
		name: "background action counted as done when it runs",
		run: func() *state.WorkflowRun {
			r := running(1, 0)
			r.Actions[1].Background = true
			return r
		}(),
		apply:   onReport(report(1, 1, state.RunRunning), hw),
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunSuccess, r.Actions[1].State)
			require.Equal(t, state.RunSuccess, r.State)
		},
	}, {
		name:    "failure with a retry left",
		run:     running(0, 1),
		apply:   onReport(report(0, 1, state.RunFailed), hw),
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunPending, r.Actions[0].State)
			require.True(t, r.Actions[0].Deadline.IsZero())
			require.Equal(t, state.RunRunning, r.State)
			require.Equal(t, "action disk attempt 1 failed; retrying (1 of 1 retries left)", r.Reason)
		},
	}, {
		name:    "failure without retries ends the run",
		run:     running(0, 0),
		apply:   onReport(report(0, 1, state.RunFailed), hw),
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunFailed, r.Actions[0].State)
			require.Equal(t, state.RunFailed, r.State)
			require.Equal(t, "action disk failed after 1 attempt(s): out", r.Reason)
		},
	}, {
		name:    "timeout reported without retries ends the run",
		run:     running(0, 0),
		apply:   onReport(report(0, 1, state.RunTimeout), hw),
		changed: true,
		check:   func(t *testing.T, r *state.WorkflowRun) { require.Equal(t, state.RunTimeout, r.State) },
	}, {
		name: "the same report again",
		run: func() *state.WorkflowRun {
			r := running(0, 0)
			r.Actions[0].State = state.RunFailed
			r.State = state.RunFailed
			return r
		}(),
		apply: onReport(report(0, 1, state.RunFailed), hw),
	}, {
		name:  "stale: an attempt that is over",
		run:   running(0, 1),
		apply: onReport(report(0, 0, state.RunSuccess), hw),
		code:  state.ECONFLICT,
	}, {
		name:  "stale: an action that is not current",
		run:   running(1, 0),
		apply: onReport(report(0, 1, state.RunFailed), hw),
		code:  state.ECONFLICT,
	}, {
		name: "stale: a run that ended",
		run: func() *state.WorkflowRun {
			r := running(0, 0)
			_, _ = cancelRun(r, key, state.ActorReconciler, now)
			return r
		}(),
		apply: onReport(report(0, 1, state.RunSuccess), hw),
		code:  state.ECONFLICT,
	}, {
		name:  "another machine's action",
		run:   running(0, 0),
		apply: onReport(report(0, 1, state.RunSuccess), other),
		code:  state.ECONFLICT,
	}, {
		name:  "no such action",
		run:   running(0, 0),
		apply: onReport(report(5, 1, state.RunSuccess), hw),
		code:  state.EINVALID,
	}, {
		name: "global timeout",
		run:  running(0, 0),
		apply: func(r *state.WorkflowRun) (bool, error) {
			changed, ended := timeoutRun(r, now.Add(time.Hour))
			require.Equal(t, 0, ended)
			return changed, nil
		},
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunTimeout, r.State)
			require.Equal(t, state.RunTimeout, r.Actions[0].State)
			require.Equal(t, "global timeout of 600s passed", r.Reason)
		},
	}, {
		name: "before the global deadline",
		run:  running(0, 0),
		apply: func(r *state.WorkflowRun) (bool, error) {
			changed, _ := timeoutRun(r, now)
			return changed, nil
		},
	}, {
		name:    "action timeout with a retry left",
		run:     running(0, 1),
		apply:   func(r *state.WorkflowRun) (bool, error) { return timeoutAttempt(r, 0, 1, now), nil },
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunPending, r.Actions[0].State)
			require.Equal(t, "no report within the action's timeout of 60s", r.Actions[0].Message)
			require.Equal(t, state.RunRunning, r.State)
		},
	}, {
		name:    "action timeout without retries",
		run:     running(0, 0),
		apply:   func(r *state.WorkflowRun) (bool, error) { return timeoutAttempt(r, 0, 1, now), nil },
		changed: true,
		check:   func(t *testing.T, r *state.WorkflowRun) { require.Equal(t, state.RunTimeout, r.State) },
	}, {
		name:  "action timeout of an attempt that is over",
		run:   running(0, 1),
		apply: func(r *state.WorkflowRun) (bool, error) { return timeoutAttempt(r, 0, 0, now), nil },
	}, {
		name:    "cancel",
		run:     running(0, 0),
		apply:   func(r *state.WorkflowRun) (bool, error) { return cancelRun(r, key, state.Actor("user:ann"), now) },
		changed: true,
		check: func(t *testing.T, r *state.WorkflowRun) {
			require.Equal(t, state.RunCancelled, r.State)
			require.Equal(t, state.RunCancelled, r.Actions[0].State)
			require.Equal(t, "cancelled by user:ann", r.Reason)
		},
	}, {
		name: "cancel a run that ended",
		run: func() *state.WorkflowRun {
			r := running(0, 0)
			finish(r, state.RunFailed, "x", now)
			return r
		}(),
		apply: func(r *state.WorkflowRun) (bool, error) { return cancelRun(r, key, state.ActorReconciler, now) },
		code:  state.ECONFLICT,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneRun(tc.run)
			changed, err := tc.apply(tc.run)
			require.Equal(t, tc.code, state.ErrorCode(err), "%v", err)
			require.Equal(t, tc.changed, changed)
			if !changed {
				require.Equal(t, before, tc.run, "a rule that changes nothing leaves the run as it was")
			}
			if tc.check != nil {
				tc.check(t, tc.run)
			}
		})
	}
}
