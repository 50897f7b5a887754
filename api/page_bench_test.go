package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/schema/schematest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// pageFleet is the fleet of BenchmarkAPIPage and BenchmarkWorkflowWrite.
const pageFleet = 10_000

// BenchmarkAPIPage measures pages of 500 items of a 10,000-machine fleet
// (schematest.Fleet: 10,000 hardware, 100 templates, a workflow per
// machine, each with a running run of its template's two actions), as a
// dashboard or `tink hardware list` pages through it: each request asks
// for the next of the 20 pages (?limit=500&continue=...), over and over.
// It reports the median request (p50-ms) and the first request of a
// fresh server (first-ms), which also builds what the server keeps in
// memory.
func BenchmarkAPIPage(b *testing.B) {
	st := fleetStore(b, pageFleet)
	for _, res := range []client.Resource{client.Hardware, client.Workflows} {
		b.Run(string(res), func(b *testing.B) {
			srv, err := api.New(api.Config{Store: st})
			require.NoError(b, err)
			base := serveBench(b, srv.Handler()) + "/v1/" + string(res) + "?limit=500"
			get := func(cont string) (string, time.Duration) {
				u := base
				if cont != "" {
					u += "&continue=" + url.QueryEscape(cont)
				}
				start := time.Now()
				resp, err := http.Get(u)
				require.NoError(b, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				require.NoError(b, err)
				require.Equal(b, http.StatusOK, resp.StatusCode, string(body))
				var page struct {
					Metadata client.ListMeta `json:"metadata"`
					Items    []struct{}      `json:"items"`
				}
				require.NoError(b, json.Unmarshal(body, &page))
				require.Len(b, page.Items, 500)
				return page.Metadata.Continue, took
			}
			// The pages' tokens, from a first walk, which is also the
			// first use of the server.
			tokens := []string{""}
			cont, first := get("")
			for cont != "" {
				tokens = append(tokens, cont)
				cont, _ = get(cont)
			}
			require.Len(b, tokens, pageFleet/500)
			var took []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				_, d := get(tokens[i%len(tokens)])
				took = append(took, d)
			}
			slices.Sort(took)
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// fleetStore returns a store (NoSync: these benchmarks read, or write
// little) holding schematest.Fleet(n, 100) as a sync applies it, and a
// running run for every workflow, as after the engine started them.
func fleetStore(b *testing.B, n int) state.Store {
	b.Helper()
	ctx := context.Background()
	fsys := fstest.MapFS{}
	for name, content := range schematest.Fleet(n, 100) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	set, err := schema.NewLoader().Load(ctx, fsys)
	require.NoError(b, err)
	st, err := badger.Open(ctx, b.TempDir(), badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	batch := &state.Batch{Actor: state.ActorGit, Revision: "0123456789abcdef0123456789abcdef01234567"}
	objs := make([]schema.Object, 0, set.Len())
	for _, h := range set.Hardware {
		objs = append(objs, h)
	}
	for _, t := range set.Templates {
		objs = append(objs, t)
	}
	for _, w := range set.Workflows {
		objs = append(objs, w)
	}
	for _, o := range objs {
		so, err := reconciler.ToState(o, state.SourceGit, batch.Revision)
		require.NoError(b, err)
		if w, ok := o.(*schema.Workflow); ok {
			so.Status = reconciler.WithLastRun(so.Status, 1)
			run := reconciler.PendingRun(w, 1, "created by the sync of "+batch.Revision)
			run.State, run.CurrentAction, run.StartedAt = state.RunRunning, 1, time.Now()
			mac := w.Spec.HardwareMap["device_1"]
			for i, name := range []string{"stream-image", "write-config"} {
				a := state.RunAction{Task: "os-installation", Name: name, Image: "quay.io/tinkerbell/actions/" + name + ":v1.0.0", Timeout: 600, Worker: mac, State: state.RunPending}
				if i == 0 {
					a.State, a.Attempt, a.StartedAt, a.FinishedAt = state.RunSuccess, 1, run.StartedAt, time.Now()
				}
				run.Actions = append(run.Actions, a)
			}
			batch.Runs = append(batch.Runs, run)
		}
		batch.Put(so, "")
	}
	_, err = st.Apply(ctx, batch)
	require.NoError(b, err)
	return st
}

// BenchmarkWorkflowWrite measures creating a workflow and a template
// through the API on a 10,000-machine fleet (schematest.Fleet): each
// request is checked with the set-wide rules (the workflow's template
// rendered for its hardware, its hardwareMap's MACs found in the fleet; a
// template rendered for the workflows that use it) and written. Each
// sub-benchmark reports the median request (p50-ms) and the first request
// of a fresh server (first-ms), which also builds its fleet index.
func BenchmarkWorkflowWrite(b *testing.B) {
	st := fleetStore(b, pageFleet)
	for _, bc := range []struct {
		name, path string
		body       func(i int) string
	}{
		{"workflow", "/v1/workflows", func(i int) string {
			n := i % pageFleet
			return apitest.WorkflowYAML(fmt.Sprintf("new-wf-%06d", i), fmt.Sprintf("tmpl-%03d", n%100), fmt.Sprintf("node-%05d", n), schematest.MAC(n))
		}},
		{"template", "/v1/templates", func(i int) string {
			return apitest.TemplateYAML(fmt.Sprintf("new-tmpl-%06d", i))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := api.New(api.Config{Store: st})
			require.NoError(b, err)
			u := serveBench(b, srv.Handler()) + bc.path
			post := func(i int) time.Duration {
				start := time.Now()
				resp, err := http.Post(u, "application/yaml", strings.NewReader(bc.body(i)))
				require.NoError(b, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				require.NoError(b, err)
				require.Equal(b, http.StatusCreated, resp.StatusCode, string(body))
				return took
			}
			first := post(0)
			var took []time.Duration
			b.ResetTimer()
			for i := 1; b.Loop(); i++ {
				took = append(took, post(i))
			}
			slices.Sort(took)
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
