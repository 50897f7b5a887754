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
	"sync/atomic"
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
	benchFleet(b, nil, benchActions, func(b *testing.B, m *Main) machineDriver {
		return func(ctx context.Context, i int, actions int) ([]time.Duration, error) {
			return workAs(ctx, m.Addr(), i, actions, func(report func() error) (time.Duration, error) {
				t0 := time.Now()
				err := report()
				return time.Since(t0), err
			})
		}
	}, reportClosedLoop)
}

// BenchmarkWorkersOpenLoop: the fleet of BenchmarkWorkers, driven open
// loop: together the 1,000 workers send a steady 2,000 reports a second
// (each worker one every 500 ms, their schedules spread evenly over that
// interval), whatever the answers take. A report's latency counts from
// when it was due, not from when it was sent, so a worker held up by a
// slow answer counts the wait of the reports queued behind it (no
// coordinated omission). The clock starts once every worker holds its
// first action: the fleet's start (1,000 connections and first long polls
// at once) is not the steady rate this measures. Each workflow has 20
// actions: 40 reports, 20 s of driving. Reported: reports/s achieved, p50
// and p99 report latency.
func BenchmarkWorkersOpenLoop(b *testing.B) {
	const rate = 2000.0 // reports a second, all workers together
	machines := benchMachines()
	every := time.Duration(float64(machines) / rate * float64(time.Second)) // one worker's
	var t0 time.Time
	var last atomic.Int64 // when the last report was answered, ns after t0
	benchFleet(b, nil, 20, func(b *testing.B, m *Main) machineDriver {
		var holding sync.WaitGroup // workers yet to hold their first action
		holding.Add(machines)
		start := make(chan struct{})
		go func() {
			holding.Wait()
			t0 = time.Now().Add(100 * time.Millisecond)
			close(start)
		}()
		last.Store(0)
		return func(ctx context.Context, i int, actions int) ([]time.Duration, error) {
			var due time.Time
			return workAs(ctx, m.Addr(), i, actions, func(report func() error) (time.Duration, error) {
				if due.IsZero() { // the first report: this worker holds its first action
					holding.Done()
					select {
					case <-start:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
					due = t0.Add(time.Duration(i) * every / time.Duration(machines))
				}
				time.Sleep(time.Until(due))
				if err := report(); err != nil {
					return 0, err
				}
				answered := time.Since(t0)
				for {
					l := last.Load()
					if int64(answered) <= l || last.CompareAndSwap(l, int64(answered)) {
						break
					}
				}
				took := answered - due.Sub(t0)
				due = due.Add(every)
				return took, nil
			})
		}
	}, func(b *testing.B, r fleetRun) {
		b.ReportMetric(float64(len(r.lat))/time.Duration(last.Load()).Seconds(), "reports/s")
		b.ReportMetric(float64(r.lat[len(r.lat)/2].Microseconds())/1000, "p50-report-ms")
		b.ReportMetric(float64(r.lat[len(r.lat)*99/100].Microseconds())/1000, "p99-report-ms")
		b.ReportMetric(float64(r.cpu.Microseconds())/float64(len(r.lat)), "cpu-us/report")
	})
}

// workAs runs machine i's workflow of actions as tink-worker does, over a
// client of its own (the server at addr): it reports each action RUNNING
// and SUCCESS, each report through send, which makes it when it is due
// and returns its latency; the next action comes with the answer to the
// SUCCESS report when it is ready, else from a long poll.
func workAs(ctx context.Context, addr string, i, actions int, send func(report func() error) (time.Duration, error)) ([]time.Duration, error) {
	c, closeClient := workerClient(addr)
	defer closeClient()
	id := fmt.Sprintf("node-%04d", i)
	var mine []time.Duration
	var next *client.WorkerAction
	for done := 0; done < actions; {
		a := next
		next = nil
		if a == nil {
			var err error
			if a, err = c.NextAction(ctx, id, 5*time.Second); err != nil {
				return nil, err
			}
			if a == nil {
				continue
			}
		}
		for _, s := range []state.RunState{state.RunRunning, state.RunSuccess} {
			r := client.WorkerReport{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: s}
			took, err := send(func() error {
				if s == state.RunSuccess {
					n, err := c.ReportActionNext(ctx, id, r)
					next = n
					return err
				}
				return c.ReportAction(ctx, id, r)
			})
			if err != nil {
				return nil, err
			}
			mine = append(mine, took)
		}
		done++
	}
	return mine, nil
}

// reportClosedLoop reports what BenchmarkWorkers documents.
func reportClosedLoop(b *testing.B, r fleetRun) {
	b.ReportMetric(float64(2*r.machines*r.actions)/r.elapsed.Seconds(), "transitions/s")
	b.ReportMetric(float64(r.lat[len(r.lat)/2].Microseconds())/1000, "p50-report-ms")
	b.ReportMetric(float64(r.lat[len(r.lat)*99/100].Microseconds())/1000, "p99-report-ms")
	b.ReportMetric(float64(r.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(r.elapsed.Seconds(), "s-total")
	// CPU time (server and simulated workers alike) per transition:
	// steadier than the rate on a machine others are using.
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(2*r.machines*r.actions), "cpu-us/transition")
}

// fleetRun is what one drive of the fleet measured.
type fleetRun struct {
	machines, actions int
	lat               []time.Duration // of every report, sorted
	elapsed           time.Duration   // from the first request to the last answer
	cpu               time.Duration   // the process's, meanwhile
	peakHeap          uint64
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

// benchFleet starts tink-server (with args) on a fleet of benchMachines
// machines, each with a workflow of actions instant actions, drives every
// machine at once with the driver newDriver returns, and reports what it
// measured with report.
func benchFleet(b *testing.B, args []string, actions int, newDriver func(b *testing.B, m *Main) machineDriver, report func(*testing.B, fleetRun)) {
	machines := benchMachines()
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
		report(b, fleetRun{machines: machines, actions: actions, lat: lat, elapsed: elapsed, cpu: cpu, peakHeap: peak})
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

// benchActions is how many actions each machine's workflow has in
// BenchmarkWorkers.
const benchActions = 10

// benchMachines is 1,000 machines; BENCH_WORKERS scales it down for
// profiling.
func benchMachines() int {
	if v := os.Getenv("BENCH_WORKERS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return 1000
}
