package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// startProcessWorkerIn runs tink-worker with the process runtime and the
// given work directory, which a restarted worker shares with the first,
// and env added to its environment (TINK_TOKEN=...).
func startProcessWorkerIn(t *testing.T, bin, server, id, workDir string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--server", "http://"+server, "--id", id, "--work-dir", workDir, "--wait", "1s")
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestProcessWorkerKilledMidAction: a real tink-worker is killed with
// SIGKILL while its action runs, and started again. The interrupted attempt
// is never started again: it is reported FAILED, the action's leftover
// process is stopped, and the template's retries decide whether a new
// attempt runs.
func TestProcessWorkerKilledMidAction(t *testing.T) {
	bin := buildWorker(t)
	for _, c := range []struct {
		name    string
		retries int
		state   state.RunState
		log     []string
	}{
		{"NoRetries", 0, state.RunFailed, []string{"start"}},
		{"OneRetry", 1, state.RunSuccess, []string{"start", "start", "end"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newScenario(t)
			s.workflow("wf", action{name: "once", script: `echo start >> $DIR/log; sleep 3; echo end >> $DIR/log`, retries: c.retries})
			m := MustRunMain(t, s.repo)
			work := t.TempDir()
			first := startProcessWorkerIn(t, bin, m.Addr(), "node-01", work)
			require.Eventually(t, func() bool { return len(s.log()) == 1 }, 30*time.Second, 20*time.Millisecond)
			require.NoError(t, first.Process.Signal(syscall.SIGKILL))
			_ = first.Wait()
			startProcessWorkerIn(t, bin, m.Addr(), "node-01", work)
			run := waitRun(t, m.Store, "wf", 30*time.Second, terminal)
			require.Equal(t, c.state, run.State, run.Reason)
			// Past the time the first attempt's process would have ended.
			time.Sleep(3500 * time.Millisecond)
			require.Equal(t, c.log, s.log(), "the interrupted attempt ran once and its leftover process was stopped")
			require.Equal(t, c.retries+1, run.Actions[0].Attempt)
			if c.retries == 0 {
				require.Contains(t, run.Actions[0].Message, "the worker was restarted while this attempt ran")
			}
		})
	}
}
