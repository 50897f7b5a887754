package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema/schematest"
)

// BenchmarkValidate times `tink validate DIR` as a whole process, as CI
// runs it on a pull request, with default settings: process start, package
// initialisation, reading, validating and rendering the repository. The
// repository is schematest.Fleet: n hardware, 100 templates and a workflow
// per hardware (10k: 20,100 objects; 100k: 200,100). It reports the
// median wall time of at least validateRuns runs (s/validate) and the
// largest resident set of any run (peak-RSS-MiB, from the child's rusage).
func BenchmarkValidate(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "tink")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(b, err, "%s", out)
	for _, size := range []struct {
		name string
		n    int
	}{{"10k", 10_000}, {"100k", 100_000}} {
		b.Run(size.name, func(b *testing.B) {
			dir := b.TempDir()
			require.NoError(b, schematest.Write(dir, schematest.Fleet(size.n, 100)))
			want := []byte("ok: " + plural(size.n, "hardware", "hardware") + ", 100 templates, " + plural(size.n, "workflow", "workflows") + "\n")
			b.ResetTimer()
			var took []time.Duration
			var peakKiB int64
			for range max(b.N, validateRuns) {
				cmd := exec.Command(bin, "validate", dir)
				cmd.Env = withoutGCSettings(os.Environ())
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				start := time.Now()
				err := cmd.Run()
				took = append(took, time.Since(start))
				require.NoError(b, err, "%s", stderr.String())
				require.Equal(b, string(want), stdout.String())
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					peakKiB = max(peakKiB, ru.Maxrss) // KiB on Linux
				}
			}
			slices.Sort(took)
			b.Logf("%d runs: %v", len(took), took)
			b.ReportMetric(took[len(took)/2].Seconds(), "s/validate")
			b.ReportMetric(float64(peakKiB)/1024, "peak-RSS-MiB")
		})
	}
}

// validateRuns is how many runs s/validate is the median of. One run is not
// a figure on our virtual machines: the same 100k validation, run back to
// back, took 6.4 and 13.2 s (user and system time both moving; see
// BENCHMARKS.md), and the 100k/10k ratio of single runs swung with it.
const validateRuns = 3

// withoutGCSettings drops GOGC and GOMEMLIMIT from env: the figure is
// tink's own defaults, whatever the shell running the benchmark sets.
func withoutGCSettings(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			out = append(out, kv)
		}
	}
	return out
}
