package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema/schematest"
	"github.com/tinkops/tinkops/state"
)

// BenchmarkUI measures issue 20's targets on a fleet of 10,000 machines,
// each with a workflow and its run (schematest.Fleet): tink-server (the
// real Main, durable store, no tokens) serves the dashboard's overview and
// first hardware page (target: under 100 ms each), and headless Chromium
// renders them (target: under 1 s from navigation to the load event, the
// page's script and style included).
func BenchmarkUI(b *testing.B) {
	const machines = 10_000
	ctx := context.Background()
	repo := b.TempDir()
	writeFiles(b, repo, schematest.Fleet(machines, 100))
	m := MustRunMain(b, repo)
	require.Eventually(b, func() bool {
		st, err := m.Store.SyncStatus(ctx)
		return err == nil && st.LastAppliedRevision != ""
	}, 3*time.Minute, 100*time.Millisecond)
	// Measure once the engine has started every run, as on a server past
	// its first minutes.
	require.Eventually(b, func() bool {
		p, err := m.Store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunPending, state.RunPreparing}, Limit: 1})
		return err == nil && len(p.Runs) == 0
	}, 5*time.Minute, 500*time.Millisecond)
	base := "http://" + m.Addr()
	browser := newBrowser(b)

	pages := []struct{ name, path string }{{"overview", "/ui/"}, {"hardware", "/ui/hardware"}}
	if testing.Verbose() {
		// Beyond the targets, for the record: one machine's page and a
		// search that scans the fleet.
		pages = append(pages, struct{ name, path string }{"machine", "/ui/hardware/node-04242"},
			struct{ name, path string }{"search", "/ui/hardware?q=node-0424"})
	}
	for _, page := range pages {
		get := func() time.Duration {
			start := time.Now()
			resp, err := http.Get(base + page.path)
			require.NoError(b, err)
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.NoError(b, err)
			require.Equal(b, http.StatusOK, resp.StatusCode)
			return time.Since(start)
		}
		// The first request after start builds the API's fleet index from
		// a full listing; it is reported on its own.
		first := get()
		b.Run(page.name+"/served", func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				lat = append(lat, get())
			}
			reportLatency(b, lat)
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
		})
		b.Run(page.name+"/rendered", func(b *testing.B) {
			// lat is the browser's own measure: from the start of the
			// navigation to the end of the load event (the HTML fetched and
			// parsed, script and style loaded, the page laid out); wall adds
			// the DevTools round trips around it.
			var lat, wall []time.Duration
			for b.Loop() {
				browse(b, browser, chromedp.Navigate("about:blank"))
				start := time.Now()
				browse(b, browser, chromedp.Navigate(base+page.path), chromedp.WaitVisible(chromedp.CSS("main table")))
				wall = append(wall, time.Since(start))
				ms := eval[float64](b, browser, `(function(){var n=performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime})()`)
				lat = append(lat, time.Duration(ms*float64(time.Millisecond)))
			}
			slices.Sort(wall)
			b.ReportMetric(float64(wall[len(wall)/2].Microseconds())/1000, "wall-p50-ms")
			if page.path == "/ui/hardware" {
				require.Equal(b, 50, eval[int](b, browser, `document.querySelectorAll("#hardware tbody tr").length`))
			}
			reportLatency(b, lat)
		})
	}
}

// reportLatency reports the median and the worst of lat in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
