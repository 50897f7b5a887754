package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// BenchmarkHardwareCheck measures the set-wide check of a hardware written
// through the API against a fleet of 10,000 machines: a POST whose MAC
// clashes, so the check runs whole and nothing is written.
func BenchmarkHardwareCheck(b *testing.B) {
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
	body := apitest.HardwareYAML("node-new", "52:54:00:10:00:01", "10.2.0.1")
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Post(url, "application/yaml", strings.NewReader(body))
		require.NoError(b, err)
		resp.Body.Close()
		require.Equal(b, http.StatusBadRequest, resp.StatusCode)
	}
}
