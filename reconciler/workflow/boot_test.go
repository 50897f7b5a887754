package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// bootRecorder is a Preparer and Finisher that records what it was asked;
// the BMC itself is tested against ipmi_sim in reconciler/bmc.
type bootRecorder struct {
	mu      sync.Mutex
	calls   []string
	prepErr error
}

func (b *bootRecorder) Prepare(_ context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("prepare %s#%d %s %s allowPXE=%v", run.Workflow, run.Number, hw.Metadata.Name, wf.Spec.BootOptions.BootMode, *run.AllowPXE))
	return b.prepErr
}

func (b *bootRecorder) Finish(_ context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("finish %s#%d %s %s", run.Workflow, run.Number, hw.Metadata.Name, run.State))
	return nil
}

func (b *bootRecorder) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

// startBootEngine syncs one machine with a netboot workflow that toggles
// allowPXE and runs an engine with prep until the test ends.
func startBootEngine(t *testing.T, prep workflow.Preparer, log ...*slog.Logger) (*badger.Store, *workflow.Engine) {
	t.Helper()
	st, err := badger.Open(context.Background(), t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	fsys := fstest.MapFS{
		"hardware/node-01.yaml":    {Data: []byte(hw1)},
		"templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmpl, 0))},
		"workflows/wf-1.yaml": {Data: []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wf-1}
spec:
  templateRef: provision
  hardwareRef: node-01
  hardwareMap: {device_1: "52:54:00:00:00:01"}
  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}
`)},
	}
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(context.Background(), reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	cfg := workflow.Config{Store: st, Preparer: prep, Tick: 10 * time.Millisecond}
	if len(log) > 0 {
		cfg.Log = log[0]
	}
	e := workflow.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		_ = st.Close()
	})
	return st, e
}

func waitRun(t *testing.T, st state.Store, pred func(*state.WorkflowRun) bool) *state.WorkflowRun {
	t.Helper()
	var r *state.WorkflowRun
	require.Eventually(t, func() bool {
		var err error
		r, err = st.GetRun(context.Background(), state.RunKey{Workflow: "wf-1", Number: 1})
		return err == nil && pred(r)
	}, 10*time.Second, 5*time.Millisecond, "run: %+v", r)
	return r
}

// TestBootOptions: a netboot workflow goes through PREPARING (the BMC's
// boot actions) before its first action; toggleAllowNetboot allows PXE for
// the run and takes it back once it succeeds; the after-run actions run
// once the run has ended.
func TestBootOptions(t *testing.T) {
	ctx := context.Background()
	rec := &bootRecorder{}
	st, e := startBootEngine(t, rec)
	r := waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	require.Equal(t, []string{"prepare wf-1#1 node-01 netboot allowPXE=true"}, rec.log())
	require.True(t, *r.AllowPXE)
	require.Equal(t, "boot actions done", r.Reason)

	for _, want := range []string{"wipe", "write", "kexec"} {
		a, err := e.Next(ctx, "52:54:00:00:00:01", 0)
		require.NoError(t, err)
		require.NotNil(t, a)
		require.Equal(t, want, a.Name)
		_, err = e.Report(ctx, "node-01", workflow.Report{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: state.RunSuccess})
		require.NoError(t, err)
	}
	r = waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunSuccess })
	require.False(t, *r.AllowPXE, "a machine that installed must not install again on its next boot")
	require.Contains(t, r.Reason, "PXE no longer allowed")
	require.Eventually(t, func() bool { return len(rec.log()) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "finish wf-1#1 node-01 SUCCESS", rec.log()[1])
}

// TestBootActionsFail: a BMC that fails past its retries fails the run with
// the BMC's message; PXE stays allowed so the run can be retried.
func TestBootActionsFail(t *testing.T) {
	rec := &bootRecorder{prepErr: errors.New("power off: Unable to establish IPMI v2 / RMCP+ session")}
	st, _ := startBootEngine(t, rec)
	r := waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State.Terminal() })
	require.Equal(t, state.RunFailed, r.State)
	require.Equal(t, "boot actions failed: power off: Unable to establish IPMI v2 / RMCP+ session", r.Reason)
	require.True(t, *r.AllowPXE)
	require.Eventually(t, func() bool { return len(rec.log()) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "finish wf-1#1 node-01 FAILED", rec.log()[1])
}

// logLines decodes the JSON log lines written so far.
func logLines(t *testing.T, b *apitest.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "%s", line)
		out = append(out, m)
	}
	return out
}

// TestTransitionLogs: every log line about a run carries workflow, run,
// hardware and action; run states at info, action states at debug.
func TestTransitionLogs(t *testing.T) {
	ctx := context.Background()
	buf := &apitest.Buffer{}
	st, e := startBootEngine(t, &bootRecorder{}, slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	a, err := e.Next(ctx, "52:54:00:00:00:01", 0)
	require.NoError(t, err)
	_, err = e.Report(ctx, "node-01", workflow.Report{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: state.RunFailed, Message: "disk busy"})
	require.NoError(t, err)
	waitRun(t, st, func(r *state.WorkflowRun) bool { return r.State == state.RunFailed })

	var msgs []string
	for _, l := range logLines(t, buf) {
		if l["workflow"] == nil {
			continue
		}
		msgs = append(msgs, l["msg"].(string))
		require.Equal(t, "wf-1", l["workflow"], l)
		require.EqualValues(t, 1, l["run"], l)
		require.Equal(t, "node-01", l["hardware"], l)
		require.Equal(t, "wipe", l["action"], l)
	}
	require.Contains(t, msgs, "run preparing")
	require.Contains(t, msgs, "run running")
	require.Contains(t, msgs, "action running")
	require.Contains(t, msgs, "run failed")
}
