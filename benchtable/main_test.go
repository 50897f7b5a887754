package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sample is go test output as make bench writes it: results with the
// GOMAXPROCS suffix, sub-benchmarks, a line a benchmark printed itself.
const sample = `goos: linux
pkg: github.com/tinkops/tinkops/cmd/tink-server
BenchmarkWorkers-2   	       1	52000000000 ns/op	  12000 transitions/s	  40.5 p50-report-ms	 90.1 p99-report-ms
fleet of 1000 machines ready
BenchmarkIdleRSS/10k-2   	   1	 9 ns/op	 250.0 idle-RSS-MiB	 4.000 s/full-sync
BenchmarkIdleRSS/100k-2  	   1	 9 ns/op	 2600 idle-RSS-MiB	 52.00 s/full-sync
BenchmarkFleetSync/full-2 	   1	 9 ns/op	 3.500 s/sync	 350.0 peak-heap-MiB
PASS
ok  	github.com/tinkops/tinkops/cmd/tink-server	60.1s
`

func TestParseReadsEveryFigure(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Empty(t, r.failures)
	require.Equal(t, 12000.0, r.figures["BenchmarkWorkers"]["transitions/s"])
	require.Equal(t, 90.1, r.figures["BenchmarkWorkers"]["p99-report-ms"])
	require.Equal(t, 2600.0, r.figures["BenchmarkIdleRSS/100k"]["idle-RSS-MiB"])
	require.NotContains(t, r.figures, "fleet")
}

func TestTableJudgesEachGoal(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	var out strings.Builder
	write(&out, targets, r)
	row := func(title string) string {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, title) {
				return l
			}
		}
		t.Fatalf("no row %q in\n%s", title, out.String())
		return ""
	}
	// A rate at or above its goal is met; a time above its bound is missed.
	require.Contains(t, row("worker transitions"), "12000/s")
	require.True(t, strings.HasSuffix(row("worker transitions"), "met"))
	require.True(t, strings.HasSuffix(row("full sync of 20,100 objects"), "missed"))
	require.True(t, strings.HasSuffix(row("full sync: peak heap"), "met"))
	// Ratios: 2600/250 = 10.4x is within 12x, 52/4 = 13x is not.
	require.Contains(t, row("100k fleet: idle RSS"), "10.4x")
	require.True(t, strings.HasSuffix(row("100k fleet: idle RSS"), "met"))
	require.True(t, strings.HasSuffix(row("100k fleet: full sync"), "missed"))
	// A figure the run did not report is shown as such, never as met.
	require.True(t, strings.HasSuffix(row("list of 100 workflows"), "MISSING"))
	require.Contains(t, out.String(), "4 of 17 goals met")
}

func TestFailuresAreCaught(t *testing.T) {
	r, err := parse(strings.NewReader(sample + "--- FAIL: BenchmarkAPI\nFAIL\tgithub.com/tinkops/tinkops/api\t3.0s\n"))
	require.NoError(t, err)
	require.Len(t, r.failures, 2)
}
