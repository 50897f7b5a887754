package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestRetryPreparesAgain drives a netboot run through a real IPMI BMC
// (ipmi_sim, reached through bmclib): its boot actions fail for want of a
// secret; once the secret is there, a plain retry prepares the machine
// again (power off, PXE once, power on) before its first action, and the
// events say so. A retry from a later action leaves the machine as it is;
// a retry from the start prepares it again.
func TestRetryPreparesAgain(t *testing.T) {
	ctx := context.Background()
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	secrets := t.TempDir()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	hw := hw1 + fmt.Sprintf("  bmc: {address: %s, port: %d, protocol: ipmi, credentialsRef: bmc-node-01}\n", sim.Host, sim.Port)
	fsys := fstest.MapFS{
		"hardware/node-01.yaml":    {Data: []byte(hw)},
		"templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmpl, 0))},
		"workflows/wf-1.yaml": {Data: []byte(strings.TrimSuffix(wf("wf-1"), "}\n") +
			", bootOptions: {bootMode: netboot, toggleAllowNetboot: true}}\n")},
	}
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(ctx, reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	ctrl, err := bmc.New(bmc.Config{Store: st, Secrets: bmc.NewSecrets(secrets), Retries: -1, CallTimeout: 5 * time.Second})
	require.NoError(t, err)
	e := workflow.New(workflow.Config{Store: st, Preparer: ctrl, Tick: 10 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		_ = st.Close()
	})
	wfKey := state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-1"}
	alice := state.APIUser("alice")
	failFirst := func() {
		t.Helper()
		a, err := e.Next(ctx, "52:54:00:00:00:01", 5*time.Second)
		require.NoError(t, err)
		require.NotNil(t, a)
		_, err = e.Report(ctx, "node-01", workflow.Report{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: state.RunFailed, Message: "disk busy"})
		require.NoError(t, err)
		waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunFailed })
	}

	r := waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State.Terminal() })
	require.Equal(t, state.RunFailed, r.State)
	require.Contains(t, r.Reason, `secret "bmc-node-01" not found`)
	require.Empty(t, sim.SetCalls(), "nothing was done to the machine")

	// The secret is fixed; a plain retry prepares the machine again.
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, sim.User, sim.Password, sim.Host)
	_, err = e.Retry(ctx, alice, wfKey, false)
	require.NoError(t, err)
	r = waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, sim.SetCalls(), "netboot again: off, PXE once, on")
	require.True(t, *r.AllowPXE)
	evs, err := st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "wf-1"}})
	require.NoError(t, err)
	var story []string
	for _, ev := range evs {
		if ev.Type == state.EventRunState || ev.Type == state.EventBMC {
			story = append(story, ev.Message)
		}
	}
	text := strings.Join(story, "\n")
	require.Contains(t, text, "Workflow/wf-1#1: FAILED -> PENDING: retried by api:alice from action wipe; waits its turn")
	require.Contains(t, text, "Workflow/wf-1#1: PENDING -> PREPARING: retry: preparing node-01 again: BMC boot actions (the run starts over)")
	require.Regexp(t, `Workflow/wf-1#1: power off: ok via ipmitool`, text)
	require.Contains(t, text, "Workflow/wf-1#1: PREPARING -> RUNNING: boot actions done")

	// Past its boot actions, a retry from the failed action resumes on the
	// machine as it is.
	failFirst()
	sim.ResetCalls()
	_, err = e.Retry(ctx, alice, wfKey, false)
	require.NoError(t, err)
	r = waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	require.Equal(t, "retry: resumed from action wipe; node-01 is not prepared again (the run was past its boot actions)", r.Reason)
	require.Empty(t, sim.SetCalls())

	// From the start, the machine is prepared again.
	failFirst()
	sim.ResetCalls()
	_, err = e.Retry(ctx, alice, wfKey, true)
	require.NoError(t, err)
	r = waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	require.Equal(t, "boot actions done", r.Reason)
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, sim.SetCalls())
	a, err := e.Next(ctx, "52:54:00:00:00:01", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "wipe", a.Name)
	require.Equal(t, 1, a.Attempt, "attempts count afresh from the start")
}
