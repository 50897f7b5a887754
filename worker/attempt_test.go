package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
