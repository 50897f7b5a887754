package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// BenchmarkWorkers: 1,000 simulated workers (goroutines speaking HTTP to
// a real tink-server on loopback, durable store) each run a 10-action
// workflow of instant actions. Reported: durable action transitions per
// second (each action is handed out and then succeeds: two writes), p50 /
// p99 report latency, and the server's peak heap.
func BenchmarkWorkers(b *testing.B) {
	benchFleet(b, nil, func(b *testing.B, m *Main) machineDriver {
		return func(ctx context.Context, i int, actions int) ([]time.Duration, error) {
			c, done := workerClient(m.Addr())
			defer done()
			id := fmt.Sprintf("node-%04d", i)
			var mine []time.Duration
			for done := 0; done < actions; {
				a, err := c.NextAction(ctx, id, 5*time.Second)
				if err != nil {
					return nil, err
				}
				if a == nil {
					continue
				}
				for _, s := range []state.RunState{state.RunRunning, state.RunSuccess} {
					t0 := time.Now()
					if err := c.ReportAction(ctx, id, client.WorkerReport{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: s}); err != nil {
						return nil, err
					}
					mine = append(mine, time.Since(t0))
				}
				done++
			}
			return mine, nil
		}
	})
}

// workerClient is one simulated worker's API client, over a connection of
// its own as a real worker (a process of its own) has, and the function
// that closes it. The 1,000 workers share the server's two cores, so
// their HTTP is kept cheap: a shared default transport keeps two idle
// connections per host and would make most requests dial (and the server
// accept and close) a fresh TCP connection, and net/http's transport
// spends two goroutines and their hand-offs per connection. connTransport
// writes each request and reads its response on one kept-alive
// connection, in the worker's goroutine: still HTTP/1.1 over loopback,
// built and parsed by the real client.
func workerClient(addr string) (*client.Client, func()) {
	t := &connTransport{addr: addr}
	c, err := client.New("http://"+addr, "", &http.Client{Transport: t})
	if err != nil {
		panic(err) // a constant URL
	}
	return c, t.close
}

// connTransport is an http.RoundTripper over one kept-alive connection,
// for one caller at a time: a simulated worker asks one thing at a time.
type connTransport struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// body is the last response's body: read to its end (the client
	// does, or Close drains it) before the connection carries the next.
	body io.ReadCloser
	// reuse is false once a response said Connection: close.
	reuse bool
}

// RoundTrip implements http.RoundTripper.
func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.body != nil {
		_ = t.body.Close() // drains it: the connection is free again
		t.body = nil
	}
	if t.conn != nil && !t.reuse {
		t.close()
	}
	if t.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(req.Context(), "tcp", t.addr)
		if err != nil {
			return nil, err
		}
		t.conn, t.br, t.bw, t.reuse = conn, bufio.NewReader(conn), bufio.NewWriter(conn), true
	}
	if err := req.Write(t.bw); err != nil {
		t.close()
		return nil, err
	}
	if err := t.bw.Flush(); err != nil {
		t.close()
		return nil, err
	}
	resp, err := http.ReadResponse(t.br, req)
	if err != nil {
		t.close()
		return nil, err
	}
	t.body, t.reuse = resp.Body, !resp.Close
	return resp, nil
}

func (t *connTransport) close() {
	if t.conn != nil {
		_ = t.conn.Close()
	}
	t.conn, t.body = nil, nil
}

// machineDriver runs machine i's workflow of actions to its end and
// returns the latency of each report.
type machineDriver func(ctx context.Context, i int, actions int) ([]time.Duration, error)

// benchMAC is machine i's MAC in the fleet benchmarks.
func benchMAC(i int) string { return fmt.Sprintf("52:54:00:01:%02x:%02x", i>>8, i&0xff) }

// benchFleet starts tink-server (with args) on a fleet of benchSize
// machines, each with a workflow of instant actions, and drives every
// machine at once with the driver newDriver returns, reporting what
// BenchmarkWorkers documents.
func benchFleet(b *testing.B, args []string, newDriver func(b *testing.B, m *Main) machineDriver) {
	machines, actions := benchSize()
	repo := b.TempDir()
	var tmpl strings.Builder
	tmpl.WriteString("version: \"0.1\"\nname: instant\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n")
	for i := 0; i < actions; i++ {
		fmt.Fprintf(&tmpl, "      - {name: step-%d, image: instant:v1, timeout: 600}\n", i)
	}
	write := func(name, content string) {
		p := filepath.Join(repo, name)
		require.NoError(b, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(b, os.WriteFile(p, []byte(content), 0o644))
	}
	write("templates/instant.yaml", tmpl.String())
	for i := 0; i < machines; i++ {
		mac := benchMAC(i)
		write(fmt.Sprintf("hardware/node-%04d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%04d}\nspec: {interfaces: [{dhcp: {mac: %q}, netboot: {allowWorkflow: true}}]}\n", i, mac))
		write(fmt.Sprintf("workflows/wf-%04d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf-%04d}\nspec: {templateRef: instant, hardwareRef: node-%04d, hardwareMap: {device_1: %q}}\n", i, i, mac))
	}
	for n := 0; n < b.N; n++ {
		m := NewMain(io.Discard, io.Discard)
		require.NoError(b, m.ParseFlags(append([]string{"--listen", "127.0.0.1:0", "--data-dir", b.TempDir(), "--repo", repo}, args...)))
		require.NoError(b, m.Open(context.Background()))
		ctx := context.Background()
		require.Eventually(b, func() bool {
			p, err := m.Store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunRunning}, Limit: machines})
			return err == nil && len(p.Runs) == machines
		}, 2*time.Minute, 50*time.Millisecond)

		drive := newDriver(b, m)
		var mu sync.Mutex
		var lat []time.Duration
		var peak uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
		}()
		stopProfile := profileDrive(b)
		cpu0 := processCPU(b)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, machines)
		for i := 0; i < machines; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				mine, err := drive(ctx, i, actions)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		elapsed := time.Since(start)
		cpu := processCPU(b) - cpu0
		stopProfile()
		close(stop)
		<-sampled
		close(errs)
		for err := range errs {
			require.NoError(b, err)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(2*machines*actions)/elapsed.Seconds(), "transitions/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-report-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-report-ms")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(elapsed.Seconds(), "s-total")
		// CPU time (server and simulated workers alike) per transition:
		// steadier than the rate on a machine others are using.
		b.ReportMetric(float64(cpu.Microseconds())/float64(2*machines*actions), "cpu-us/transition")
		require.NoError(b, m.Close())
	}
}

// profileDrive starts a CPU profile of the driven phase alone (not the
// sync and start that precede it) into the file BENCH_CPUPROFILE names,
// and returns what stops it; without BENCH_CPUPROFILE it does nothing.
func profileDrive(b *testing.B) (stop func()) {
	path := os.Getenv("BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	require.NoError(b, err)
	require.NoError(b, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		require.NoError(b, f.Close())
	}
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSize is 1,000 machines of 10 actions; BENCH_WORKERS scales it down
// for profiling.
func benchSize() (machines, actions int) {
	if v := os.Getenv("BENCH_WORKERS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n, 10
		}
	}
	return 1000, 10
}
