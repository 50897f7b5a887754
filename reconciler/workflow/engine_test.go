package workflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

const hw1 = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01}
spec:
  disks: [{device: /dev/sda}]
  interfaces: [{dhcp: {mac: "52:54:00:00:00:01"}}]
`

const tmpl = `version: "0.1"
name: provision
global_timeout: 600
tasks:
  - name: disk
    worker: "{{.device_1}}"
    environment: {DISK: "{{ index .Hardware.Disks 0 }}", MODE: "task"}
    volumes: [/dev:/dev]
    actions:
      - name: wipe
        image: wipe:v1
        timeout: 60
        retries: %d
        environment: {MODE: action}
      - name: write
        image: write:v1
        timeout: 30
  - name: boot
    worker: "{{.device_1}}"
    actions:
      - name: kexec
        image: kexec:v1
        timeout: 30
        background: true
`

func wf(name string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: %s}
spec: {templateRef: provision, hardwareRef: node-01, hardwareMap: {device_1: "52:54:00:00:00:01"}}
`, name)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	st    *badger.Store
	e     *workflow.Engine
	clock *clock
	dir   string
}

func setup(t *testing.T, retries int, workflows ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := badger.Open(context.Background(), dir, badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	fsys := fstest.MapFS{"hardware/node-01.yaml": {Data: []byte(hw1)}, "templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmpl, retries))}}
	for _, w := range workflows {
		fsys["workflows/"+w+".yaml"] = &fstest.MapFile{Data: []byte(wf(w))}
	}
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(context.Background(), reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	c := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	return &fixture{st: st, e: workflow.New(workflow.Config{Store: st, Now: c.now}), clock: c, dir: dir}
}

func (f *fixture) run(t *testing.T, wf string, n int) *state.WorkflowRun {
	t.Helper()
	r, err := f.st.GetRun(context.Background(), state.RunKey{Workflow: wf, Number: n})
	require.NoError(t, err)
	return r
}

func (f *fixture) next(t *testing.T) *workflow.Assignment {
	t.Helper()
	a, err := f.e.Next(context.Background(), "52:54:00:00:00:01", 0)
	require.NoError(t, err)
	return a
}

func (f *fixture) report(t *testing.T, a *workflow.Assignment, s state.RunState, msg string) *state.WorkflowRun {
	t.Helper()
	r, err := f.e.Report(context.Background(), "node-01", workflow.Report{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: s, Message: msg})
	require.NoError(t, err)
	return r
}

func TestRunToSuccess(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1")
	require.Nil(t, f.next(t), "nothing before the run starts")
	f.e.Step(ctx)
	r := f.run(t, "wf-1", 1)
	require.Equal(t, state.RunRunning, r.State)
	require.Len(t, r.Actions, 3)
	require.Equal(t, map[string]string{"DISK": "/dev/sda", "MODE": "action"}, r.Actions[0].Environment, "task environment under the action's")
	require.Equal(t, []string{"/dev:/dev"}, r.Actions[0].Volumes)
	require.Equal(t, f.clock.now().Add(600*time.Second), r.Deadline)

	a := f.next(t)
	require.Equal(t, workflow.Assignment{Workflow: "wf-1", Run: 1, Task: "disk", Action: 0, Attempt: 1, Name: "wipe", Image: "wipe:v1",
		Environment: map[string]string{"DISK": "/dev/sda", "MODE": "action"}, Volumes: []string{"/dev:/dev"}, Timeout: 60,
		Deadline: f.clock.now().Add(60 * time.Second)}, *a)
	// Asked again (the worker restarted), the same attempt comes back.
	again := f.next(t)
	require.Equal(t, *a, *again)

	f.report(t, a, state.RunRunning, "")
	f.report(t, a, state.RunSuccess, "wiped")
	// The same report twice changes nothing.
	f.report(t, a, state.RunSuccess, "wiped")
	// A report on an old attempt or a past action is refused with why.
	_, err := f.e.Report(ctx, "node-01", workflow.Report{Workflow: "wf-1", Run: 1, Action: 0, Attempt: 2, State: state.RunFailed})
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))

	b := f.next(t)
	require.Equal(t, "write", b.Name)
	f.report(t, b, state.RunSuccess, "")
	c := f.next(t)
	require.Equal(t, "kexec", c.Name)
	require.True(t, c.Background)
	r = f.report(t, c, state.RunRunning, "kexec started")
	require.Equal(t, state.RunSuccess, r.State, "a background action is done once it started")
	require.Equal(t, "every action succeeded", r.Reason)

	evs, err := f.st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "wf-1"}})
	require.NoError(t, err)
	var story []string
	for _, ev := range evs {
		if ev.Type == state.EventRunState || ev.Type == state.EventActionState {
			story = append(story, string(ev.Type)+": "+ev.Message)
		}
	}
	require.GreaterOrEqual(t, len(story), 8, "%v", story)
}

func TestRetriesThenFailAndRetry(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 1, "wf-1")
	f.e.Step(ctx)
	a := f.next(t)
	r := f.report(t, a, state.RunFailed, "disk busy")
	require.Equal(t, state.RunRunning, r.State)
	require.Contains(t, r.Reason, "retrying")
	a2 := f.next(t)
	require.Equal(t, 2, a2.Attempt)
	r = f.report(t, a2, state.RunFailed, "disk still busy")
	require.Equal(t, state.RunFailed, r.State)
	require.Equal(t, "action wipe failed after 2 attempt(s): disk still busy", r.Reason)
	require.Nil(t, f.next(t))

	r, err := f.e.Retry(ctx, state.APIUser("alice"), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-1"}, false)
	require.NoError(t, err)
	require.Equal(t, state.RunPending, r.State, "a retried run waits its turn")
	require.Equal(t, "retried by api:alice from action wipe; waits its turn", r.Reason)
	f.e.Step(ctx)
	r = f.run(t, "wf-1", 1)
	require.Equal(t, state.RunRunning, r.State)
	require.Equal(t, "retry: resumed from action wipe", r.Reason)
	a3 := f.next(t)
	require.Equal(t, 3, a3.Attempt)
	require.Equal(t, "wipe", a3.Name)
	_, err = f.e.Retry(ctx, state.APIUser("alice"), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-1"}, false)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "a running run cannot be retried")
}

func TestTimeoutAndCancel(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1", "wf-2")
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-1", 1).State)
	require.Equal(t, state.RunPending, f.run(t, "wf-2", 1).State, "one run per machine at a time")
	require.Equal(t, "waits for wf-1#1, RUNNING on node-01", f.run(t, "wf-2", 1).Reason, "status says what it waits for")
	a := f.next(t)
	f.report(t, a, state.RunRunning, "")
	f.clock.add(59 * time.Second)
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-1", 1).State)
	f.clock.add(2 * time.Second)
	f.e.Step(ctx)
	r := f.run(t, "wf-1", 1)
	require.Equal(t, state.RunTimeout, r.State, "timed out by the server's timer, no report needed")
	require.Equal(t, state.RunTimeout, r.Actions[0].State)
	// The late worker is told.
	_, err := f.e.Report(ctx, "node-01", workflow.Report{Workflow: "wf-1", Run: 1, Action: 0, Attempt: 1, State: state.RunSuccess})
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	require.Contains(t, state.ErrorMessage(err), "is TIMEOUT")

	// The machine is free: the next workflow starts, and is cancelled.
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-2", 1).State)
	b := f.next(t)
	require.Equal(t, "wf-2", b.Workflow)
	r, err = f.e.Cancel(ctx, state.APIUser("bob"), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-2"})
	require.NoError(t, err)
	require.Equal(t, state.RunCancelled, r.State)
	require.Equal(t, state.RunCancelled, r.Actions[0].State)
	_, err = f.e.Report(ctx, "node-01", workflow.Report{Workflow: "wf-2", Run: 1, Action: 0, Attempt: 1, State: state.RunRunning})
	require.Contains(t, state.ErrorMessage(err), "CANCELLED (cancelled by api:bob); stop")
}

// TestRestart: a new engine on the same store goes on where the old one
// was; the running action keeps its attempt and deadline.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1")
	f.e.Step(ctx)
	a := f.next(t)
	f.report(t, a, state.RunRunning, "")

	e2 := workflow.New(workflow.Config{Store: f.st, Now: f.clock.now})
	again, err := e2.Next(ctx, "node-01", 0)
	require.NoError(t, err)
	require.Equal(t, *a, *again, "not handed out as a new attempt")
	_, err = e2.Report(ctx, "node-01", workflow.Report{Workflow: "wf-1", Run: 1, Action: 0, Attempt: 1, State: state.RunSuccess})
	require.NoError(t, err)
	f.clock.add(61 * time.Second)
	b, err := e2.Next(ctx, "node-01", 0)
	require.NoError(t, err)
	require.Equal(t, "write", b.Name)
	f.clock.add(31 * time.Second)
	e2.Step(ctx)
	require.Equal(t, state.RunTimeout, f.run(t, "wf-1", 1).State, "deadlines survive a restart")
}

// TestNextWaits: a worker waiting for work is answered when the run
// starts.
func TestNextWaits(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1")
	got := make(chan *workflow.Assignment, 1)
	go func() {
		a, err := f.e.Next(ctx, "node-01", 5*time.Second)
		if err != nil {
			a = nil
		}
		got <- a
	}()
	time.Sleep(50 * time.Millisecond)
	f.e.Step(ctx)
	select {
	case a := <-got:
		require.NotNil(t, a)
		require.Equal(t, "wipe", a.Name)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting worker was not answered")
	}
}

// TestRetryWaitsItsTurn: a run retried while another run has its machine
// waits until that run ends (one run per machine), then resumes.
func TestRetryWaitsItsTurn(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1")
	f.e.Step(ctx)
	a := f.next(t)
	require.Equal(t, "wf-1", a.Workflow)
	f.report(t, a, state.RunFailed, "disk busy")

	// wf-2 arrives and starts on the machine wf-1 left.
	hw := fstest.MapFS{"hardware/node-01.yaml": {Data: []byte(hw1)}, "templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmpl, 0))},
		"workflows/wf-1.yaml": {Data: []byte(wf("wf-1"))}, "workflows/wf-2.yaml": {Data: []byte(wf("wf-2"))}}
	out, err := reconciler.New(reconciler.Config{Store: f.st}).Sync(ctx, reconciler.Snapshot{Revision: "r2", FS: hw})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	f.e = workflow.New(workflow.Config{Store: f.st, Now: f.clock.now})
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-2", 1).State)

	_, err = f.e.Retry(ctx, state.APIUser("alice"), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-1"}, false)
	require.NoError(t, err)
	f.e.Step(ctx)
	r := f.run(t, "wf-1", 1)
	require.Equal(t, state.RunPending, r.State, "never two runs RUNNING on one machine")
	require.Equal(t, "waits for wf-2#1, RUNNING on node-01", r.Reason)
	b := f.next(t)
	require.Equal(t, "wf-2", b.Workflow, "the worker gets the run that holds its machine")

	for b != nil && b.Workflow == "wf-2" {
		f.report(t, b, state.RunSuccess, "")
		b = f.next(t)
	}
	require.Equal(t, state.RunSuccess, f.run(t, "wf-2", 1).State)
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-1", 1).State, "its turn came")
	c := f.next(t)
	require.Equal(t, "wf-1", c.Workflow)
	require.Equal(t, "wipe", c.Name)
	require.Equal(t, 2, c.Attempt)
}
