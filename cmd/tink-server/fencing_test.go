package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// lockedBuffer collects a process's output for a test to read while it
// runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFencing pauses the leader (SIGSTOP) past its lease. Meanwhile the
// other replica takes over: it fires an action's timeout, applies a commit
// and does a netboot workflow's BMC actions. Resumed (SIGCONT), the old
// leader does nothing as leader: no BMC call (the BMC simulator's log),
// no apply and no second timeout (the event log), and it steps down.
func TestFencing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, ipmi_sim and two servers")
	}
	ctx := context.Background()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dsnPath := dsnFile(t, dsn)
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	secrets := t.TempDir()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, sim.User, sim.Password, sim.Host)
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": e2eHardware + fmt.Sprintf("  bmc: {address: %s, port: %d, protocol: ipmi, credentialsRef: bmc-node-01}\n", sim.Host, sim.Port),
		"hardware/node-02.yaml": "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-02}\nspec: {interfaces: [{dhcp: {mac: \"52:54:00:00:00:02\"}}]}\n",
		"templates/slow.yaml":   "version: \"0.1\"\nname: slow\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n      - {name: hangs, image: shell:v1, timeout: 6}\n",
		"workflows/hangs.yaml":  "apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: hangs}\nspec: {templateRef: slow, hardwareRef: node-02, hardwareMap: {device_1: \"52:54:00:00:00:02\"}}\n",
	})
	serverBin := filepath.Join(t.TempDir(), "tink-server")
	out, err := exec.Command("go", "build", "-o", serverBin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	start := func(name string, stderr io.Writer) *serverProc {
		p := &serverProc{name: name, addr: freeAddr(t)}
		p.cmd = exec.Command(serverBin, "--listen", p.addr, "--data-dir", t.TempDir(), "--repo", repo, "--store", "postgres",
			"--postgres-dsn-file", dsnPath, "--replica-name", name, "--leader-lease", "2s", "--secrets-dir", secrets,
			"--bmc-timeout", "5s", "--bmc-retries", "1", "--log-format", "json")
		p.cmd.Stdout, p.cmd.Stderr = io.Discard, stderr
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, p.cmd.Start())
		t.Cleanup(func() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		})
		return p
	}
	oldLog := &lockedBuffer{}
	r1 := start("r1", io.MultiWriter(oldLog, os.Stderr))
	require.Eventually(t, func() bool { return len(leaderOf([]*serverProc{r1})) == 1 }, 30*time.Second, 50*time.Millisecond)
	r2 := start("r2", os.Stderr)
	s, err := postgres.Open(ctx, dsn, postgres.Options{CompactInterval: -1})
	require.NoError(t, err)
	defer s.Close()

	// A worker takes the action and never reports: its timeout (6 s) is
	// due while the leader is stopped.
	c, err := client.New("http://"+r2.addr, "", nil)
	require.NoError(t, err)
	var a *client.WorkerAction
	require.Eventually(t, func() bool {
		a, err = c.NextAction(ctx, "node-02", time.Second)
		return err == nil && a != nil
	}, 20*time.Second, 50*time.Millisecond)

	require.NoError(t, r1.cmd.Process.Signal(syscall.SIGSTOP))
	// A commit while the leader sleeps: a netboot workflow with BMC
	// actions.
	writeFiles(t, repo, map[string]string{"templates/e2e.yaml": e2eTemplate(filepath.Join(t.TempDir(), "out")), "workflows/e2e.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: e2e}
spec:
  templateRef: e2e
  hardwareRef: node-01
  hardwareMap: {device_1: "52:54:00:00:00:01"}
  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}
`})
	require.Eventually(t, func() bool { return len(leaderOf([]*serverProc{r2})) == 1 }, 20*time.Second, 50*time.Millisecond, "r2 takes over")
	waitRun(t, s, "hangs", 30*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunTimeout })
	waitRun(t, s, "e2e", 30*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunRunning })
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, setCalls(sim.Calls()), "the new leader did the boot actions")
	before, err := s.EventBounds(ctx)
	require.NoError(t, err)

	require.NoError(t, r1.cmd.Process.Signal(syscall.SIGCONT))
	require.Eventually(t, func() bool {
		st, err := r1.status()
		return err == nil && st.Replica != nil && !st.Replica.Leader
	}, 10*time.Second, 20*time.Millisecond, "the resumed replica says it is not the leader")
	time.Sleep(3 * time.Second) // its timers, its loop and its BMC work had every chance
	require.Contains(t, oldLog.String(), "stepped down as leader")
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, setCalls(sim.Calls()), "no BMC call from the deposed leader")
	after, err := s.EventBounds(ctx)
	require.NoError(t, err)
	require.Equal(t, before.Latest, after.Latest, "nothing written after the old leader resumed: no apply, no second timeout")
	evs, err := s.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "hangs", Types: []state.EventType{state.EventActionState}}})
	require.NoError(t, err)
	timeouts := 0
	for _, ev := range evs {
		if ev.State == state.RunTimeout {
			timeouts++
		}
	}
	require.Equal(t, 1, timeouts, "the timeout fired once")
	require.Len(t, leaderOf([]*serverProc{r1, r2}), 1)
	require.Equal(t, "r2", leaderOf([]*serverProc{r1, r2})[0].name)
}
