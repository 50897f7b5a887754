package schema_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/schema/schematest"
)

// writeFleet writes schematest.Fleet(nHW, nT) into dir.
func writeFleet(tb testing.TB, dir string, nHW, nT int) {
	tb.Helper()
	for name, content := range schematest.Fleet(nHW, nT) {
		p := filepath.Join(dir, name)
		require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(tb, os.WriteFile(p, []byte(content), 0o644))
	}
}

// BenchmarkLoadFleet times schema.Load (validation and rendering included)
// on 10,000 hardware, 100 templates and 10,000 workflows: 20,100 objects.
func BenchmarkLoadFleet(b *testing.B) {
	dir := b.TempDir()
	writeFleet(b, dir, 10_000, 100)
	fsys := os.DirFS(dir)
	l := schema.NewLoader()
	// Warm the definitions and the file cache so the figure is Load itself.
	_, err := l.Load(context.Background(), os.DirFS(b.TempDir()))
	require.NoError(b, err)
	old := debug.SetGCPercent(gcPercent())
	defer debug.SetGCPercent(old)
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := schematest.SampleHeap(&peak)
		start := time.Now()
		set, err := l.Load(context.Background(), fsys)
		elapsed := time.Since(start)
		stop()
		require.NoError(b, err)
		require.Equal(b, 20_100, set.Len())
		b.ReportMetric(float64(set.Len())/elapsed.Seconds(), "objects/s")
		b.ReportMetric(elapsed.Seconds(), "s/load")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// gcPercent is the GC setting of the benchmark: tink validate and
// tink-server load with GOGC=400 (see cmd/), BENCH_GOGC overrides it.
func gcPercent() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_GOGC")); err == nil {
		return v
	}
	return 400
}
