package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/citest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// startHAProxy runs Debian's HAProxy in front of backends as an operator
// would: round robin, /readyz as the health check, a failed request
// re-dispatched to another server. It returns the frontend's address.
// Without haproxy the test skips on a developer's machine and fails under
// CI=true.
func startHAProxy(t *testing.T, backends []string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr == nil {
			bin, err = "/usr/sbin/haproxy", nil
		}
	}
	if err != nil {
		citest.Missing(t, "haproxy not found (install the haproxy package; .ci/run does)")
	}
	front := freeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout 502 503
frontend tink
  bind %s
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1
`, front)
	for i, b := range backends {
		fmt.Fprintf(&cfg, "  server r%d %s check\n", i+1, b)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg.String()), 0o600))
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "haproxy listens")
	return front
}

// serverProc is one tink-server process of a test.
type serverProc struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func startServerProc(t *testing.T, bin, repo, dsnFile, name string) *serverProc {
	t.Helper()
	p := &serverProc{name: name, addr: freeAddr(t)}
	p.cmd = exec.Command(bin, "--listen", p.addr, "--data-dir", t.TempDir(), "--repo", repo, "--store", "postgres",
		"--postgres-dsn-file", dsnFile, "--replica-name", name, "--leader-lease", "3s", "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

// status asks one replica directly (not through the proxy).
func (p *serverProc) status() (*client.Status, error) {
	c, err := client.New("http://"+p.addr, "", &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Status(ctx)
}

func leaderOf(procs []*serverProc) []*serverProc {
	var out []*serverProc
	for _, p := range procs {
		if st, err := p.status(); err == nil && st.Replica != nil && st.Replica.Leader {
			out = append(out, p)
		}
	}
	return out
}

// shellFleetRepo is fleetRepo whose actions append their name to
// <logs>/<MAC>.log, so a real tink-worker's work can be counted.
func shellFleetRepo(t *testing.T, machines, actions int, logs string) string {
	t.Helper()
	repo := t.TempDir()
	var tmpl strings.Builder
	tmpl.WriteString("version: \"0.1\"\nname: instant\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n")
	for i := range actions {
		fmt.Fprintf(&tmpl, "      - {name: step-%d, image: shell:v1, timeout: 600, command: [/bin/sh, -c, \"echo step-%d >> %s/{{ .device_1 }}.log\"]}\n", i, i, logs)
	}
	writeRepoFile(t, repo, "templates/instant.yaml", tmpl.String())
	for i := range machines {
		addShellMachine(t, repo, i)
	}
	return repo
}

func addShellMachine(t *testing.T, repo string, i int) {
	t.Helper()
	mac := fmt.Sprintf("52:54:00:03:%02x:%02x", i>>8, i&0xff)
	writeRepoFile(t, repo, fmt.Sprintf("hardware/node-%04d.yaml", i), fmt.Sprintf(
		"apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%04d}\nspec: {interfaces: [{dhcp: {mac: %q}}]}\n", i, mac))
	writeRepoFile(t, repo, fmt.Sprintf("workflows/wf-%04d.yaml", i), fmt.Sprintf(
		"apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf-%04d}\nspec: {templateRef: instant, hardwareRef: node-%04d, hardwareMap: {device_1: %q}}\n", i, i, mac))
}

// TestFailover: three tink-server processes on one PostgreSQL behind
// HAProxy; 50 machines of 10 actions, 48 run by simulated workers speaking
// the real protocol and 2 by real tink-worker processes, every request
// through the proxy. The leader is killed with SIGKILL mid-run. Another
// takes over (the time is printed), applies a commit made after the kill,
// and every run ends SUCCESS with every action run exactly once and no
// acknowledged report lost.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, HAProxy and five processes")
	}
	const machines, actions, real = 50, 10, 2
	ctx := context.Background()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dsnPath := dsnFile(t, dsn)
	logs := t.TempDir()
	repo := shellFleetRepo(t, machines, actions, logs)
	serverBin := filepath.Join(t.TempDir(), "tink-server")
	out, err := exec.Command("go", "build", "-o", serverBin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	workerBin := buildWorker(t)

	var procs []*serverProc
	var addrs []string
	for i := range 3 {
		p := startServerProc(t, serverBin, repo, dsnPath, fmt.Sprintf("r%d", i+1))
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	proxy := startHAProxy(t, addrs)
	require.Eventually(t, func() bool { return len(leaderOf(procs)) == 1 }, 30*time.Second, 50*time.Millisecond, "one leader")

	// Real workers for the first machines, simulated ones for the rest,
	// all through the proxy.
	for i := range real {
		startWorker(t, workerBin, proxy, fmt.Sprintf("node-%04d", i))
	}
	c, err := client.New("http://"+proxy, "", nil)
	require.NoError(t, err)
	clients := func() []*client.Client { return []*client.Client{c} }
	wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	var progress atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, machines+1)
	var sims []*simWorker
	runSim := func(w *simWorker) {
		defer wg.Done()
		for len(w.done) < actions {
			if err := w.run(wctx, len(w.done)+1); err != nil {
				errs <- err
				return
			}
			progress.Add(1)
		}
	}
	for i := real; i < machines; i++ {
		w := &simWorker{id: fmt.Sprintf("node-%04d", i), clients: clients, done: map[int]bool{}}
		sims = append(sims, w)
		wg.Add(1)
		go runSim(w)
	}

	require.Eventually(t, func() bool { return progress.Load() >= (machines-real)*actions/3 }, 2*time.Minute, 10*time.Millisecond)
	old := leaderOf(procs)
	require.Len(t, old, 1)
	require.NoError(t, old[0].cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	var rest []*serverProc
	for _, p := range procs {
		if p != old[0] {
			rest = append(rest, p)
		}
	}
	var took time.Duration
	require.Eventually(t, func() bool {
		if len(leaderOf(rest)) == 1 {
			took = time.Since(killed)
			return true
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "a new leader")
	fmt.Printf("failover: leader %s killed with SIGKILL; new leader %s after %s (lease 3s)\n", old[0].name, leaderOf(rest)[0].name, took.Round(time.Millisecond))
	t.Logf("new leader after %s", took.Round(time.Millisecond))
	require.Less(t, took, 3*time.Second+3*time.Second/5+2*time.Second, "within the lease and one retry (and the status poll)")

	// A commit after the kill: only a leader applies it.
	addShellMachine(t, repo, machines)
	extra := &simWorker{id: fmt.Sprintf("node-%04d", machines), clients: clients, done: map[int]bool{}}
	sims = append(sims, extra)
	wg.Add(1)
	go runSim(extra)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	s, err := postgres.Open(ctx, dsn, postgres.Options{CompactInterval: -1})
	require.NoError(t, err)
	defer s.Close()
	require.Eventually(t, func() bool {
		p, err := s.ListRuns(ctx, state.RunQuery{})
		if err != nil || len(p.Runs) != machines+1 {
			return false
		}
		for _, r := range p.Runs {
			if r.State != state.RunSuccess {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "every run SUCCESS, the one committed after the kill included")
	p, err := s.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	for _, r := range p.Runs {
		for _, a := range r.Actions {
			require.Equal(t, 1, a.Attempt, "%s: action %s handed out once", r.Key(), a.Name)
			require.Equal(t, state.RunSuccess, a.State)
		}
	}
	for _, w := range sims {
		require.Empty(t, w.handedTwice, "%s: an action handed out after it was done", w.id)
		require.Len(t, w.done, actions, "%s: every acknowledged report is in the store", w.id)
	}
	for i := range real {
		b, err := os.ReadFile(filepath.Join(logs, fmt.Sprintf("52:54:00:03:%02x:%02x.log", i>>8, i&0xff)))
		require.NoError(t, err)
		var want []string
		for a := range actions {
			want = append(want, "step-"+strconv.Itoa(a))
		}
		require.Equal(t, want, strings.Fields(string(b)), "the real worker on node-%04d ran each action once, in order", i)
	}
	bounds, err := s.EventBounds(ctx)
	require.NoError(t, err)
	evs, err := s.Events(ctx, state.EventQuery{Limit: 100000})
	require.NoError(t, err)
	require.Len(t, evs, int(bounds.Latest), "no gap in the event log")
	ends := 0
	for _, ev := range evs {
		if ev.Type == state.EventActionState && ev.State == state.RunSuccess {
			ends++
		}
	}
	require.Equal(t, (machines+1)*actions, ends, "one SUCCESS event per action: no acknowledged report lost or doubled")
}
