package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// BenchmarkAPI measures the API under concurrent load from a load generator
// on loopback, next to a bare httprouter handler returning a constant on
// the same machine in the same run: GET of one workflow (with its run), and
// a list of 100 workflows (each with its run). Each sub-benchmark reports
// requests per second and the 99th percentile latency. The API ones then
// load the bare handler with as many requests, right away, and report their
// throughput as a share of it (bare-ratio), so that both figures see the
// same machine load.
func BenchmarkAPI(b *testing.B) {
	r := httprouter.New()
	body := []byte(`{"ok":true}` + "\n")
	r.GET("/v1/workflows/:name", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	bare := serveBench(b, r) + "/v1/workflows/wf-0000"
	token := "bench-viewer-token"
	url := benchServer(b, token)

	b.Run("BareHandler", func(b *testing.B) {
		report(b, load(b, bare, "", true))
	})
	for _, bc := range []struct{ name, path string }{
		{"GetWorkflow", "/v1/workflows/wf-0042"},
		{"ListWorkflows100", "/v1/workflows?limit=100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			res := load(b, url+bc.path, token, true)
			report(b, res)
			ref := load(b, bare, "", false)
			b.ReportMetric(res.rps/ref.rps, "bare-ratio")
		})
	}
}

// benchServer starts the API with a tokens file (a viewer token) on a store
// holding 100 machines, a template and 100 workflows, each with a run of
// three actions.
func benchServer(b *testing.B, token string) string {
	b.Helper()
	ctx := context.Background()
	st, err := badger.Open(ctx, b.TempDir(), badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	batch := &state.Batch{Actor: state.ActorGit}
	tmpl, _ := json.Marshal(map[string]any{"data": "version: \"0.1\"\nname: t\ntasks: []\n"})
	batch.Put(&state.Object{Kind: state.KindTemplate, Name: "basic", Source: state.SourceGit, Spec: tmpl}, "")
	for i := range 100 {
		mac := fmt.Sprintf("52:54:00:10:%02x:%02x", i/256, i%256)
		hw, _ := json.Marshal(map[string]any{"interfaces": []any{map[string]any{"dhcp": map[string]any{"mac": mac, "hostname": fmt.Sprintf("node-%04d", i)}}}})
		wf, _ := json.Marshal(map[string]any{"templateRef": "basic", "hardwareRef": fmt.Sprintf("node-%04d", i), "hardwareMap": map[string]string{"device_1": mac}})
		batch.Put(&state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("node-%04d", i), Source: state.SourceGit, Spec: hw, Labels: map[string]string{"rack": "r1"}}, "")
		batch.Put(&state.Object{Kind: state.KindWorkflow, Name: fmt.Sprintf("wf-%04d", i), Source: state.SourceGit, Spec: wf, Status: json.RawMessage(`{"lastRun":1}`)}, "")
		run := &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%04d", i), Number: 1, State: state.RunRunning, Template: "basic", Hardware: fmt.Sprintf("node-%04d", i), CurrentAction: 1}
		for j, name := range []string{"wipe-disk", "install-os", "reboot"} {
			a := state.RunAction{Task: "provision", Name: name, Image: "quay.io/tinkerbell/actions/" + name + ":latest", Timeout: 600, Worker: mac, State: state.RunPending}
			if j == 0 {
				a.State = state.RunSuccess
			}
			run.Actions = append(run.Actions, a)
		}
		batch.Runs = append(batch.Runs, run)
	}
	_, err = st.Apply(ctx, batch)
	require.NoError(b, err)

	auth, err := api.NewAuth([]api.Token{{Name: "bench", Role: api.RoleViewer, SHA256: api.HashToken(token)}})
	require.NoError(b, err)
	srv, err := api.New(api.Config{Store: st, Auth: auth})
	require.NoError(b, err)
	return serveBench(b, srv.Handler())
}

// serveBench serves h on loopback until the benchmark ends.
func serveBench(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// result is what one load run measured.
type result struct {
	rps float64
	p99 time.Duration
}

func report(b *testing.B, r result) {
	b.ReportMetric(r.rps, "req/s")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
}

// load sends b.N GET requests to url from several goroutines over keep-alive
// connections and measures requests per second and the p99 latency. When
// timed, the benchmark timer (and allocation count) runs while it sends;
// otherwise not at all.
func load(b *testing.B, url, token string, timed bool) result {
	b.Helper()
	b.StopTimer()
	workers := 4 * runtime.GOMAXPROCS(0)
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	get := func(lat *[]time.Duration) error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		*lat = append(*lat, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return err
	}
	// Warm the connections so the measurement is of requests, not dials.
	var warm []time.Duration
	for range workers {
		require.NoError(b, get(&warm))
	}

	lats := make([][]time.Duration, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	if timed {
		b.StartTimer()
	}
	start := time.Now()
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[w] = make([]time.Duration, 0, n)
			for range n {
				if err := get(&lats[w]); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		require.NoError(b, err)
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	res := result{rps: float64(b.N) / elapsed.Seconds()}
	if len(all) > 0 {
		res.p99 = all[len(all)*99/100]
	}
	return res
}
