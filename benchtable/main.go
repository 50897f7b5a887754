// Command benchtable reads the output of `go test -bench` (as `make bench`
// writes it) and prints one table: each performance target of the project,
// the figure this run measured for it, the goal, and whether it was met.
//
// The targets live here, next to no benchmark, on purpose: a benchmark
// reports figures (b.ReportMetric with a fixed unit), and this table is the
// one place that says which figure is held to which goal, so that a run of
// every benchmark ends in one answer instead of a page of numbers to read.
//
// Usage: go run ./benchtable bench.out
//
// It exits 1 when the benchmark run itself failed (a FAIL line or a panic),
// never because a goal was missed: a missed goal is a figure to read, not a
// broken build.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtable FILE (the output of go test -bench)")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	defer f.Close()
	run, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	write(os.Stdout, targets, run)
	if len(run.failures) > 0 {
		fmt.Fprintf(os.Stdout, "\nthe benchmark run failed: %s\n", strings.Join(run.failures, "; "))
		os.Exit(1)
	}
}

// results holds every figure a run reported, by benchmark name (without
// the -GOMAXPROCS suffix) and then by unit, and the failures it printed.
type results struct {
	figures  map[string]map[string]float64
	failures []string
}

// benchLine matches one result line: name, iterations, then value/unit
// pairs ("BenchmarkAPI/ListWorkflows100-2  1  123 ns/op  923.1 req/s").
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parse reads go test's benchmark output. When a benchmark is reported more
// than once (-count), the last figure wins: the table shows one run.
func parse(r io.Reader) (results, error) {
	res := results{figures: map[string]map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL"):
			res.failures = append(res.failures, strings.TrimSpace(line))
			continue
		case strings.HasPrefix(line, "panic:"):
			res.failures = append(res.failures, line)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		if len(fields)%2 != 0 {
			continue // a line the benchmark printed itself, not a result
		}
		figs := res.figures[m[1]]
		if figs == nil {
			figs = map[string]float64{}
			res.figures[m[1]] = figs
		}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			figs[fields[i+1]] = v
		}
	}
	return res, sc.Err()
}

// figure is one value a benchmark reported: Bench is the benchmark's full
// name without its -N suffix, Unit the metric's unit.
type figure struct {
	Bench, Unit string
}

// target is one goal: the figure it is held to, or, when Of is set, the
// ratio of the figure to Of (how a figure grows with the fleet).
type target struct {
	Title string
	Fig   figure
	Of    *figure
	// Goal is the bound; AtMost says the figure must not exceed it (a time,
	// a size), otherwise it must reach it (a rate).
	Goal   float64
	AtMost bool
	Unit   string // how the table prints the figure
}

// targets are the project's performance goals (issue 21 and the issues
// before it), in the order BENCHMARKS.md lists them.
var targets = []target{
	{Title: "worker transitions, 1,000 workers, durable", Fig: figure{"BenchmarkWorkers", "transitions/s"}, Goal: 10000, Unit: "/s"},
	{Title: "open loop 2,000 reports/s: p99 report latency", Fig: figure{"BenchmarkWorkersOpenLoop", "p99-report-ms"}, Goal: 20, AtMost: true, Unit: "ms"},
	{Title: "open loop: reports/s reached", Fig: figure{"BenchmarkWorkersOpenLoop", "reports/s"}, Goal: 1900, Unit: "/s"},
	{Title: "full sync of 20,100 objects", Fig: figure{"BenchmarkFleetSync/full", "s/sync"}, Goal: 3, AtMost: true, Unit: "s"},
	{Title: "full sync: peak heap", Fig: figure{"BenchmarkFleetSync/full", "peak-heap-MiB"}, Goal: 400, AtMost: true, Unit: "MiB"},
	{Title: "one-file commit p50 / bare fetch p50", Fig: figure{"BenchmarkFleetSync/commit", "x-bare-fetch"}, Goal: 1.5, AtMost: true, Unit: "x"},
	{Title: "one-file commit: load + plan + apply p50", Fig: figure{"BenchmarkFleetSync/commit", "ms/sync-p50"}, Goal: 30, AtMost: true, Unit: "ms"},
	{Title: "webhook push to applied (tink-server), p50", Fig: figure{"BenchmarkWebhookToApplied/push", "ms/push-p50"}, Goal: 500, AtMost: true, Unit: "ms"},
	{Title: "tink validate, 20,100 objects, whole process", Fig: figure{"BenchmarkValidate/10k", "s/validate"}, Goal: 1, AtMost: true, Unit: "s"},
	{Title: "list of 100 workflows", Fig: figure{"BenchmarkAPI/ListWorkflows100", "req/s"}, Goal: 5000, Unit: "/s"},
	{Title: "500 hardware of a 10,000-machine fleet, p50", Fig: figure{"BenchmarkAPIPage/hardware", "p50-ms"}, Goal: 20, AtMost: true, Unit: "ms"},
	{Title: "500 workflows of a 10,000-machine fleet, p50", Fig: figure{"BenchmarkAPIPage/workflows", "p50-ms"}, Goal: 20, AtMost: true, Unit: "ms"},
	{Title: "idle RSS, synced 10,000-machine fleet", Fig: figure{"BenchmarkIdleRSS/10k", "idle-RSS-MiB"}, Goal: 300, AtMost: true, Unit: "MiB"},
	{Title: "create one hardware at 10,000 machines, p50", Fig: figure{"BenchmarkHardwareCheck/new", "p50-ms"}, Goal: 3, AtMost: true, Unit: "ms"},
	{Title: "100k fleet: full sync / 10k full sync", Fig: figure{"BenchmarkIdleRSS/100k", "s/full-sync"}, Of: &figure{"BenchmarkIdleRSS/10k", "s/full-sync"}, Goal: 12, AtMost: true, Unit: "x"},
	{Title: "100k fleet: validate / 10k validate", Fig: figure{"BenchmarkValidate/100k", "s/validate"}, Of: &figure{"BenchmarkValidate/10k", "s/validate"}, Goal: 12, AtMost: true, Unit: "x"},
	{Title: "100k fleet: idle RSS / 10k idle RSS", Fig: figure{"BenchmarkIdleRSS/100k", "idle-RSS-MiB"}, Of: &figure{"BenchmarkIdleRSS/10k", "idle-RSS-MiB"}, Goal: 12, AtMost: true, Unit: "x"},
}

// value returns the figure t is held to, and whether the run measured it.
func (r results) value(t target) (float64, bool) {
	v, ok := r.figures[t.Fig.Bench][t.Fig.Unit]
	if !ok || t.Of == nil {
		return v, ok
	}
	of, ok := r.figures[t.Of.Bench][t.Of.Unit]
	if !ok || of == 0 {
		return 0, false
	}
	return v / of, true
}

// write prints the table, one row per target, then a count of goals met.
func write(w io.Writer, ts []target, r results) {
	fmt.Fprintf(w, "\n%-48s %14s %14s  %s\n", "target", "measured", "goal", "")
	fmt.Fprintln(w, strings.Repeat("-", 86))
	met := 0
	for _, t := range ts {
		goal := "≥ " + format(t.Goal, t.Unit)
		if t.AtMost {
			goal = "≤ " + format(t.Goal, t.Unit)
		}
		v, ok := r.value(t)
		got, verdict := "not measured", "MISSING"
		if ok {
			got = format(v, t.Unit)
			verdict = "missed"
			if (t.AtMost && v <= t.Goal) || (!t.AtMost && v >= t.Goal) {
				verdict = "met"
				met++
			}
		}
		fmt.Fprintf(w, "%-48s %14s %14s  %s\n", t.Title, got, goal, verdict)
	}
	fmt.Fprintf(w, "%d of %d goals met\n", met, len(ts))
}

// format prints v with as many decimals as its size calls for.
func format(v float64, unit string) string {
	var s string
	switch {
	case v >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	if unit == "x" || strings.HasPrefix(unit, "/") {
		return s + unit
	}
	return s + " " + unit
}
