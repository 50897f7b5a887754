package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// BenchmarkHardwareCheck measures the set-wide check of a hardware written
// through the API against a fleet of 10,000 machines: "clash" is a POST
// whose MAC and IP clash, so the check runs whole and nothing is written
// (400); "new" is a POST of a machine that clashes with nothing, checked
// and written (201). Each reports the median request (p50-ms); the first
// request, which builds the server's fleet index (once per server, as
// /v1/status does), is made before the timer starts and reported apart
// (first-ms).
func BenchmarkHardwareCheck(b *testing.B) {
	b.Run("clash", func(b *testing.B) {
		benchHardwareWrite(b, http.StatusBadRequest, func(int) string {
			return apitest.HardwareYAML("node-new", "52:54:00:10:00:01", "10.1.0.1")
		})
	})
	b.Run("new", func(b *testing.B) {
		benchHardwareWrite(b, http.StatusCreated, func(i int) string {
			return apitest.HardwareYAML(fmt.Sprintf("new-%05d", i), fmt.Sprintf("52:54:00:20:%02x:%02x", i/256, i%256), fmt.Sprintf("10.2.%d.%d", i/256, i%256))
		})
	})
}

// benchHardwareWrite POSTs body(i) to a server over a 10,000-machine store
// and expects status.
func benchHardwareWrite(b *testing.B, status int, body func(i int) string) {
	ctx := context.Background()
	st, err := badger.Open(ctx, b.TempDir(), badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	batch := &state.Batch{Actor: state.ActorGit}
	for i := range 10000 {
		hw, _ := json.Marshal(map[string]any{"interfaces": []any{map[string]any{"dhcp": map[string]any{
			"mac": fmt.Sprintf("52:54:00:10:%02x:%02x", i/256, i%256), "ip": map[string]any{"address": fmt.Sprintf("10.1.%d.%d", i/256, i%256)}}}}})
		batch.Put(&state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("node-%05d", i), Source: state.SourceGit, Spec: hw}, "")
	}
	_, err = st.Apply(ctx, batch)
	require.NoError(b, err)
	srv, err := api.New(api.Config{Store: st})
	require.NoError(b, err)
	url := serveBench(b, srv.Handler()) + "/v1/hardware"
	post := func(i int) {
		resp, err := http.Post(url, "application/yaml", strings.NewReader(body(i)))
		require.NoError(b, err)
		resp.Body.Close()
		require.Equal(b, status, resp.StatusCode)
	}
	start := time.Now()
	post(0)
	first := time.Since(start)
	var took []time.Duration
	b.ResetTimer()
	for i := 1; b.Loop(); i++ {
		start := time.Now()
		post(i)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms") // after ResetTimer, which clears metrics
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
}
