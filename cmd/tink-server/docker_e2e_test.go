package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/worker"
	"github.com/tinkops/tinkops/worker/dockertest"
)

// startDockerWorker runs tink-worker with the docker runtime as machine
// id. This engine cannot grant every capability, hence --privileged=false.
func startDockerWorker(t *testing.T, bin, server, id string, extra ...string) *exec.Cmd {
	t.Helper()
	return startDockerWorkerIn(t, bin, server, id, t.TempDir(), extra...)
}

// startDockerWorkerIn is startDockerWorker with a given work directory, so
// that a restarted worker finds what the previous one left.
func startDockerWorkerIn(t *testing.T, bin, server, id, workDir string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"--server", "http://" + server, "--id", id, "--work-dir", workDir, "--wait", "1s",
		"--runtime", "docker", "--privileged=false", "--pull", "never"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func containersOf(t *testing.T, c *client.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", worker.LabelWorker+"="+id)})
	require.NoError(t, err)
	return len(res.Items)
}

// dockerWorkflow writes a template of tasks (each a list of actions, each
// a shell script run in image) and its workflow.
func dockerWorkflow(s *scenario, name, image string, timeout int, tasks ...[]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: \"0.1\"\nname: %s\nglobal_timeout: 300\ntasks:\n", name)
	for i, actions := range tasks {
		fmt.Fprintf(&b, "  - name: task-%d\n    worker: \"{{.device_1}}\"\n    volumes: [\"%s:/out\"]\n    environment: {DISK: \"{{ index .Hardware.Disks 0 }}\"}\n    actions:\n", i+1, s.dir)
		for j, script := range actions {
			fmt.Fprintf(&b, "      - name: a%d-%d\n        image: %s\n        timeout: %d\n        pid: host\n        command: [\"/bin/sh\", \"-c\", %q]\n        environment: {MODE: 0644}\n", i+1, j+1, image, timeout, script)
		}
	}
	s.write("templates/"+name+".yaml", b.String())
	s.write("workflows/"+name+".yaml", fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\nspec: {templateRef: %s, hardwareRef: node-01, hardwareMap: {device_1: \"52:54:00:00:00:01\"}}\n", name, name))
}

// TestDockerRuntimeEndToEnd: tink-server and a real tink-worker with the
// docker runtime, against the machine's Docker Engine, with an image built
// FROM scratch: 2 tasks and 3 actions succeed with their effects on a host
// volume (environment as rendered, pid: host); a failing action fails the
// run with its output in the event; a hanging one times out and leaves no
// container; an absent image with --pull never fails clearly.
func TestDockerRuntimeEndToEnd(t *testing.T) {
	ctx := context.Background()
	engine := dockertest.MustEngine(t)
	image := dockertest.MustBusyboxImage(t, engine)
	bin := buildWorker(t)

	t.Run("Success", func(t *testing.T) {
		s := newScenario(t)
		dockerWorkflow(s, "wf", image, 30,
			[]string{`echo "one $DISK $MODE" >> /out/log`, `echo "two $(cat /proc/1/comm)" >> /out/log`},
			[]string{`echo three >> /out/log`})
		m := MustRunMain(t, s.repo)
		startDockerWorker(t, bin, m.Addr(), "node-01")
		run := waitRun(t, m.Store, "wf", 60*time.Second, terminal)
		require.Equal(t, state.RunSuccess, run.State, run.Reason)
		b, err := os.ReadFile(filepath.Join(s.dir, "log"))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Len(t, lines, 3)
		require.Equal(t, "one /dev/sda 0644", lines[0], "environment as rendered, 0644 as text")
		require.NotEqual(t, "two sh", lines[1], "pid: host: process 1 is the host's, not the action's shell")
		require.Equal(t, "three", lines[2])
		require.Zero(t, containersOf(t, engine, "node-01"))
	})

	t.Run("FailureTimeoutAbsentImage", func(t *testing.T) {
		s := newScenario(t)
		dockerWorkflow(s, "fails", image, 30, []string{`echo "disk /dev/sda is busy"; exit 1`})
		dockerWorkflow(s, "hangs", image, 2, []string{`sleep 300`})
		dockerWorkflow(s, "absent", "tinkops-test/absent:"+dockertest.RandomHex(t), 30, []string{`true`})
		m := MustRunMain(t, s.repo)
		startDockerWorker(t, bin, m.Addr(), "node-01")
		for _, wf := range []string{"fails", "hangs", "absent"} {
			waitRun(t, m.Store, wf, 90*time.Second, terminal)
		}
		run, err := m.Store.GetRun(ctx, state.RunKey{Workflow: "fails", Number: 1})
		require.NoError(t, err)
		require.Equal(t, state.RunFailed, run.State)
		evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "fails"}})
		require.NoError(t, err)
		var failed string
		for _, e := range evs {
			if e.Type == state.EventActionState && e.State == state.RunFailed {
				failed = e.Message
			}
		}
		require.Contains(t, failed, "disk /dev/sda is busy", "the output tail is in the event")

		run, err = m.Store.GetRun(ctx, state.RunKey{Workflow: "hangs", Number: 1})
		require.NoError(t, err)
		require.Equal(t, state.RunTimeout, run.State)

		run, err = m.Store.GetRun(ctx, state.RunKey{Workflow: "absent", Number: 1})
		require.NoError(t, err)
		require.Equal(t, state.RunFailed, run.State)
		require.Contains(t, run.Actions[0].Message, "is not on this machine and the pull policy is never")
		require.Eventually(t, func() bool { return containersOf(t, engine, "node-01") == 0 }, 20*time.Second, 100*time.Millisecond, "no container left")
	})
}

// TestDockerWorkerRestartMidAction: a worker killed while its action's
// container runs and started again finds the container by its labels and
// waits for it: the action runs once and the run succeeds.
func TestDockerWorkerRestartMidAction(t *testing.T) {
	engine := dockertest.MustEngine(t)
	image := dockertest.MustBusyboxImage(t, engine)
	bin := buildWorker(t)
	s := newScenario(t)
	dockerWorkflow(s, "wf", image, 60, []string{`echo start >> /out/log; sleep 4; echo end >> /out/log`})
	m := MustRunMain(t, s.repo)
	work := t.TempDir()
	first := startDockerWorkerIn(t, bin, m.Addr(), "node-01", work)
	require.Eventually(t, func() bool { return len(s.log()) == 1 }, 60*time.Second, 50*time.Millisecond)
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	startDockerWorkerIn(t, bin, m.Addr(), "node-01", work)
	run := waitRun(t, m.Store, "wf", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, run.State, run.Reason)
	require.Equal(t, []string{"start", "end"}, s.log(), "the action ran once")
	require.Equal(t, 1, run.Actions[0].Attempt)
	require.Eventually(t, func() bool { return containersOf(t, engine, "node-01") == 0 }, 20*time.Second, 100*time.Millisecond)
}
