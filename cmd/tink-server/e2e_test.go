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

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// buildWorker builds the real tink-worker binary once per test.
func buildWorker(t *testing.T) string { return buildBinary(t, "tink-worker", "../tink-worker") }

// buildBinary builds the command in dir (relative to this package) as
// name in a temporary directory.
func buildBinary(t *testing.T, name, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// startWorker runs tink-worker with the process runtime for machine id.
func startWorker(t *testing.T, bin, server, id string) *exec.Cmd {
	t.Helper()
	return startWorkerIn(t, bin, server, id, t.TempDir())
}

// startWorkerIn is startWorker with the worker's --work-dir.
func startWorkerIn(t *testing.T, bin, server, id, workDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--server", "http://"+server, "--id", id, "--work-dir", workDir, "--wait", "1s")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

const e2eHardware = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01}
spec:
  disks: [{device: /dev/sda}]
  interfaces: [{dhcp: {mac: "52:54:00:00:00:01"}}]
`

// e2eTemplate: 2 tasks, 4 actions, each appending a line to a file.
func e2eTemplate(out string) string {
	action := func(n int) string {
		return fmt.Sprintf(`      - name: step-%d
        image: shell:v1
        timeout: 30
        command: ["/bin/sh", "-c", "echo $STEP $DISK >> %s"]
        environment: {STEP: "%d"}
`, n, out, n)
	}
	return `version: "0.1"
name: e2e
global_timeout: 120
tasks:
  - name: first
    worker: "{{.device_1}}"
    environment: {DISK: "{{ index .Hardware.Disks 0 }}"}
    actions:
` + action(1) + action(2) + `  - name: second
    worker: "{{.device_1}}"
    environment: {DISK: "{{ index .Hardware.Disks 0 }}"}
    actions:
` + action(3) + action(4)
}

const e2eWorkflow = `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: e2e}
spec: {templateRef: e2e, hardwareRef: node-01, hardwareMap: {device_1: "52:54:00:00:00:01"}}
`

// TestEndToEndWithWorker: tink-server on a directory repository and a real
// tink-worker with the process runtime run a workflow of 2 tasks and 4
// actions to SUCCESS; the actions ran in order, once each, and the events
// tell the story.
func TestEndToEndWithWorker(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	out := filepath.Join(t.TempDir(), "out.txt")
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": e2eHardware, "templates/e2e.yaml": e2eTemplate(out), "workflows/e2e.yaml": e2eWorkflow,
	})
	m := MustRunMain(t, repo)
	waitReady(t, m)
	startWorker(t, buildWorker(t), m.Addr(), "52:54:00:00:00:01")

	key := state.RunKey{Workflow: "e2e", Number: 1}
	var run *state.WorkflowRun
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(ctx, key)
		run = r
		return err == nil && r.State.Terminal()
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, state.RunSuccess, run.State, run.Reason)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "1 /dev/sda\n2 /dev/sda\n3 /dev/sda\n4 /dev/sda\n", string(b))

	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "e2e"}})
	require.NoError(t, err)
	var story []string
	for _, e := range evs {
		story = append(story, string(e.Type)+" "+e.Action+": "+e.Message)
	}
	text := strings.Join(story, "\n")
	for _, step := range []string{"step-1", "step-2", "step-3", "step-4"} {
		require.Contains(t, text, "action-state "+step)
	}
	require.Contains(t, text, "SUCCESS")
	require.Regexp(t, `action-state step-1: Workflow/e2e#1: action first/step-1: SUCCESS on 52:54:00:00:00:01 after \d`, text, "events name the worker and the duration")
}
