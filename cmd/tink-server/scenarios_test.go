package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// scenario is a repository with one machine and workflows whose actions
// are shell commands, for the end-to-end tests of runs.
type scenario struct {
	t    *testing.T
	repo string
	dir  string // scratch files the actions write
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{t: t, repo: t.TempDir(), dir: t.TempDir()}
	s.write("hardware/node-01.yaml", e2eHardware)
	return s
}

func (s *scenario) write(name, content string) {
	s.t.Helper()
	p := filepath.Join(s.repo, name)
	require.NoError(s.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(s.t, os.WriteFile(p, []byte(content), 0o644))
}

// action is one template action running a shell script.
type action struct {
	name, script string
	timeout      int
	retries      int
}

// workflow declares a template and a workflow of these actions.
func (s *scenario) workflow(name string, actions ...action) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: \"0.1\"\nname: %s\nglobal_timeout: 300\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n", name)
	for _, a := range actions {
		if a.timeout == 0 {
			a.timeout = 30
		}
		fmt.Fprintf(&b, "      - name: %s\n        image: shell:v1\n        timeout: %d\n        retries: %d\n        command: [\"/bin/sh\", \"-c\", %q]\n        environment: {DIR: %q}\n",
			a.name, a.timeout, a.retries, a.script, s.dir)
	}
	s.write("templates/"+name+".yaml", b.String())
	s.write("workflows/"+name+".yaml", fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\nspec: {templateRef: %s, hardwareRef: node-01, hardwareMap: {device_1: \"52:54:00:00:00:01\"}}\n", name, name))
}

// log is what the actions appended to $DIR/log, one line each.
func (s *scenario) log() []string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return strings.Fields(string(b))
}

func waitRun(t *testing.T, st state.Store, wf string, within time.Duration, pred func(*state.WorkflowRun) bool) *state.WorkflowRun {
	t.Helper()
	var run *state.WorkflowRun
	require.Eventually(t, func() bool {
		r, err := st.GetRun(context.Background(), state.RunKey{Workflow: wf, Number: 1})
		if err != nil {
			return false
		}
		run = r
		return pred(r)
	}, within, 20*time.Millisecond, "run of %s: %+v", wf, run)
	return run
}

func terminal(r *state.WorkflowRun) bool { return r.State.Terminal() }

// TestRunScenarios: failures, retries, timeouts, a killed worker, a
// cancelled run and two workflows for one machine, with a real tink-worker.
func TestRunScenarios(t *testing.T) {
	bin := buildWorker(t)
	ctx := context.Background()

	t.Run("FailRetrySuccess", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf", action{name: "one", script: `echo one >> $DIR/log`},
			action{name: "two", script: `[ -f $DIR/fixed ] || { echo "disk not ready"; exit 1; }; echo two >> $DIR/log`},
			action{name: "three", script: `echo three >> $DIR/log`})
		m := MustRunMain(t, s.repo)
		startWorker(t, bin, m.Addr(), "node-01")
		run := waitRun(t, m.Store, "wf", 20*time.Second, terminal)
		require.Equal(t, state.RunFailed, run.State)
		require.Contains(t, run.Reason, "action two failed after 1 attempt(s): disk not ready")
		require.NoError(t, os.WriteFile(filepath.Join(s.dir, "fixed"), nil, 0o644))
		c, err := client.New("http://"+m.Addr(), "", nil)
		require.NoError(t, err)
		_, err = c.Retry(ctx, "", "wf", false)
		require.NoError(t, err)
		run = waitRun(t, m.Store, "wf", 20*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunSuccess })
		require.Equal(t, []string{"one", "two", "three"}, s.log(), "retried from the failed action: one ran once")
		require.Equal(t, 2, run.Actions[1].Attempt)
	})

	t.Run("RetriesThenSuccess", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf", action{name: "flaky", retries: 2, script: `n=$(cat $DIR/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $DIR/count; echo try$n >> $DIR/log; [ $n -ge 3 ]`})
		m := MustRunMain(t, s.repo)
		startWorker(t, bin, m.Addr(), "52:54:00:00:00:01")
		run := waitRun(t, m.Store, "wf", 20*time.Second, terminal)
		require.Equal(t, state.RunSuccess, run.State, run.Reason)
		require.Equal(t, []string{"try1", "try2", "try3"}, s.log())
		require.Equal(t, 3, run.Actions[0].Attempt)
	})

	t.Run("HangTimesOut", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf", action{name: "hang", timeout: 2, script: `sleep 60`})
		m := MustRunMain(t, s.repo)
		startWorker(t, bin, m.Addr(), "node-01")
		run := waitRun(t, m.Store, "wf", 20*time.Second, terminal)
		require.Equal(t, state.RunTimeout, run.State, run.Reason)
		a := run.Actions[0]
		require.Equal(t, state.RunTimeout, a.State)
		require.WithinDuration(t, a.StartedAt.Add(2*time.Second), a.FinishedAt, time.Second, "timed out within a second of its deadline")
	})

	t.Run("WorkerKilledMidAction", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf", action{name: "long", timeout: 3, script: `echo started >> $DIR/log; sleep 60`})
		m := MustRunMain(t, s.repo)
		w := startWorker(t, bin, m.Addr(), "node-01")
		require.Eventually(t, func() bool { return len(s.log()) == 1 }, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, w.Process.Kill())
		run := waitRun(t, m.Store, "wf", 10*time.Second, terminal)
		require.Equal(t, state.RunTimeout, run.State, "the server's timer ends it; no report needed")
		a := run.Actions[0]
		require.WithinDuration(t, a.Deadline, a.FinishedAt, time.Second)
	})

	t.Run("Cancelled", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf", action{name: "long", timeout: 60, script: `echo started >> $DIR/log; sleep 3; echo finished >> $DIR/log`},
			action{name: "after", script: `echo after >> $DIR/log`})
		m := MustRunMain(t, s.repo)
		startWorker(t, bin, m.Addr(), "node-01")
		require.Eventually(t, func() bool { return len(s.log()) == 1 }, 10*time.Second, 10*time.Millisecond)
		c, err := client.New("http://"+m.Addr(), "", nil)
		require.NoError(t, err)
		_, err = c.Cancel(ctx, "", "wf")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(s.log()) == 2 }, 10*time.Second, 10*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		run := waitRun(t, m.Store, "wf", time.Second, terminal)
		require.Equal(t, state.RunCancelled, run.State)
		require.Equal(t, []string{"started", "finished"}, s.log(), "nothing runs after the cancel")
	})

	t.Run("TwoWorkflowsOneMachine", func(t *testing.T) {
		s := newScenario(t)
		s.workflow("wf-a", action{name: "a1", script: `echo a1 >> $DIR/log; sleep 0.3`}, action{name: "a2", script: `echo a2 >> $DIR/log`})
		s.workflow("wf-b", action{name: "b1", script: `echo b1 >> $DIR/log; sleep 0.3`}, action{name: "b2", script: `echo b2 >> $DIR/log`})
		m := MustRunMain(t, s.repo)
		startWorker(t, bin, m.Addr(), "node-01")
		waitRun(t, m.Store, "wf-a", 20*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunSuccess })
		waitRun(t, m.Store, "wf-b", 20*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunSuccess })
		log := s.log()
		require.Len(t, log, 4)
		require.Contains(t, [][]string{{"a1", "a2", "b1", "b2"}, {"b1", "b2", "a1", "a2"}}, log, "one after the other, never interleaved")
	})
}

// TestServerKilledMidRun: tink-server is killed with SIGKILL while an
// action runs and started again on the same data directory; the run
// completes and each action ran exactly once.
func TestServerKilledMidRun(t *testing.T) {
	serverBin := buildServer(t)
	workerBin := buildWorker(t)
	s := newScenario(t)
	s.workflow("wf", action{name: "one", script: `echo one >> $DIR/log`},
		action{name: "two", script: `echo two-start >> $DIR/log; sleep 2; echo two-end >> $DIR/log`},
		action{name: "three", script: `echo three >> $DIR/log`})
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	start := func() *exec.Cmd {
		cmd := exec.Command(serverBin, "--repo", s.repo, "--data-dir", data, "--listen", addr)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	server := start()
	startWorker(t, workerBin, addr, "node-01")
	require.Eventually(t, func() bool {
		l := s.log()
		return len(l) == 2 && l[1] == "two-start"
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, server.Process.Signal(syscall.SIGKILL))
	_ = server.Wait()
	time.Sleep(500 * time.Millisecond)
	start()
	require.Eventually(t, func() bool { return len(s.log()) == 4 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"one", "two-start", "two-end", "three"}, s.log(), "each action ran exactly once")
	c, err := client.New("http://"+addr, "", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		w, err := c.Get(context.Background(), client.Workflows, "", "wf")
		return err == nil && w.Status.Run != nil && w.Status.Run.State == "SUCCESS"
	}, 10*time.Second, 20*time.Millisecond)
}
