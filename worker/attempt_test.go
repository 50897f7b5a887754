package worker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/worker"
)

// TestProcessRuntimeNeverRunsAnAttemptTwice: handed an attempt it already
// ran, the process runtime reports the recorded result without running it;
// handed one a killed worker began, it reports it FAILED (see also
// TestProcessWorkerKilledMidAction in cmd/tink-server, with real binaries).
func TestProcessRuntimeNeverRunsAnAttemptTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := &worker.Process{WorkDir: dir}
	out := filepath.Join(t.TempDir(), "count")
	a := &worker.Action{Workflow: "wf", Run: 1, Name: "count", Command: []string{"/bin/sh", "-c", "echo x >> " + out + "; echo ran"}, Timeout: 10}

	res := p.Run(ctx, a)
	require.Equal(t, "SUCCESS", res.State)
	again := p.Run(ctx, a)
	require.Equal(t, "SUCCESS", again.State)
	require.Contains(t, again.Message, "ran\n", "the recorded output")
	require.Contains(t, again.Message, "not run again")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "x\n", string(b), "the action ran once")

	// An attempt whose result is missing was interrupted: a worker died
	// after recording that it began.
	b2 := *a
	b2.Attempt = 2
	res = p.Run(ctx, &b2)
	require.Equal(t, "SUCCESS", res.State)
	matches, err := filepath.Glob(filepath.Join(dir, "wf-1-0-2", ".tink-result.json"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	require.NoError(t, os.Remove(matches[0]))
	res = p.Run(ctx, &b2)
	require.Equal(t, "FAILED", res.State)
	require.Contains(t, res.Message, "the worker was restarted while this attempt ran")
	b, err = os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "x\nx\n", string(b), "attempt 2 ran once")
}

// TestProcessRuntimeStopsLeftoverOfInterruptedAttempt: a worker killed
// right after it started an action, before it recorded the process, left
// the action running. The next worker finds it by its working directory
// (the attempt's own), stops it, and reports the attempt FAILED.
func TestProcessRuntimeStopsLeftoverOfInterruptedAttempt(t *testing.T) {
	dir := t.TempDir()
	attempt := filepath.Join(dir, "wf-1-0-3")
	require.NoError(t, os.MkdirAll(attempt, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(attempt, ".tink-attempt.json"), []byte("{}"), 0o600))
	left := exec.Command("/bin/sh", "-c", "sleep 60")
	left.Dir = attempt
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, left.Start())
	t.Cleanup(func() { _ = left.Process.Kill(); _ = left.Wait() })
	exited := make(chan error, 1)
	go func() { exited <- left.Wait() }()

	p := &worker.Process{WorkDir: dir}
	res := p.Run(context.Background(), &worker.Action{Workflow: "wf", Run: 1, Attempt: 3, Name: "x", Command: []string{"/bin/true"}, Timeout: 10})
	require.Equal(t, "FAILED", res.State)
	require.Contains(t, res.Message, "was still running and was stopped")
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the leftover process still runs")
	}
}
