package badger_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// Benchmarks for BENCHMARKS.md. Each write benchmark runs durable (the
// default: acknowledged means synced) and non-durable (Options.NoSync) side
// by side. Latency percentiles are reported as custom metrics.

func benchStore(b *testing.B, durable bool) *badger.Store {
	b.Helper()
	s, err := badger.Open(context.Background(), b.TempDir(), badger.Options{
		NoSync:          !durable,
		CompactInterval: -1,
		GCInterval:      -1,
		Logger:          slog.New(slog.DiscardHandler),
		Badger:          func(o badgerdb.Options) badgerdb.Options { return o.WithLoggingLevel(badgerdb.WARNING) },
	})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	return s
}

func durabilities(b *testing.B, fn func(b *testing.B, durable bool)) {
	for _, durable := range []bool{true, false} {
		b.Run(fmt.Sprintf("durable=%t", durable), func(b *testing.B) { fn(b, durable) })
	}
}

// latencies collects operation latencies and reports percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, prefix string) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(p float64) float64 {
		return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

func specObject(name string) *state.Object {
	o := hw(name, map[string]string{"rack": "r1", "site": "ams"})
	o.Annotations = map[string]string{"padding": strings.Repeat("p", 400)}
	return o
}

// BenchmarkPut: one caller creating objects one at a time; every op waits
// for its own commit.
func BenchmarkPut(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		s := benchStore(b, durable)
		ctx := context.Background()
		var lat latencies
		i := 0
		for b.Loop() {
			start := time.Now()
			_, err := s.PutObject(ctx, state.ActorGit, specObject(fmt.Sprintf("node-%08d", i)))
			if err != nil {
				b.Fatal(err)
			}
			lat.add(time.Since(start))
			i++
		}
		lat.report(b, "")
	})
}

// BenchmarkGet: random reads of 10,000 stored objects.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b, false)
	ctx := context.Background()
	const n = 10_000
	for i := 0; i < n; i += 1000 {
		batch := &state.Batch{Actor: state.ActorGit}
		for j := i; j < i+1000; j++ {
			batch.Put(specObject(fmt.Sprintf("node-%08d", j)), "")
		}
		_, err := s.Apply(ctx, batch)
		require.NoError(b, err)
	}
	var lat latencies
	i := 0
	for b.Loop() {
		key := state.ObjectKey{Kind: state.KindHardware, Name: fmt.Sprintf("node-%08d", (i*7919)%n)}
		start := time.Now()
		if _, err := s.GetObject(ctx, key); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
		i++
	}
	lat.report(b, "")
}

// BenchmarkApply1000: one batch of 1,000 objects (about 700 bytes each, with
// their 1,000 events), as a large Git revision is applied.
func BenchmarkApply1000(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		s := benchStore(b, durable)
		ctx := context.Background()
		round := 0
		for b.Loop() {
			batch := &state.Batch{Actor: state.ActorGit}
			for j := range 1000 {
				batch.Put(specObject(fmt.Sprintf("r%05d-%04d", round, j)), "")
			}
			if _, err := s.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
			round++
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "objects/s")
	})
}

// concurrently runs b.N calls of op spread over writers goroutines and
// reports throughput and latency.
func concurrently(b *testing.B, writers int, unit string, op func(w, i int) error) {
	var lat latencies
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
				lat.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"/s")
	lat.report(b, "")
}

// BenchmarkEventAppend: each Apply appends one event; with 1,000 concurrent
// writers, group commit shares one sync among many of them.
func BenchmarkEventAppend(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		for _, writers := range []int{1, 1000} {
			b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
				s := benchStore(b, durable)
				ctx := context.Background()
				concurrently(b, writers, "events", func(w, i int) error {
					_, err := s.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Events: []state.Event{{
						Type: state.EventBMC, Kind: state.KindHardware, Name: fmt.Sprintf("node-%04d", w),
						Message: "power cycled",
					}}})
					return err
				})
			})
		}
	})
}

// BenchmarkEventAppendSteady: 1,000 writers append events at a steady
// 2,000 per second in total, the load of a busy fleet rather than a flood.
// Latency is measured from when each append was due, so queueing counts.
func BenchmarkEventAppendSteady(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		const writers, perSecond = 1000, 2000
		s := benchStore(b, durable)
		ctx := context.Background()
		due := make(chan time.Time, writers)
		var lat latencies
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range due {
					if _, err := s.Apply(ctx, &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: "steady"}}}); err != nil {
						errs <- err
						return
					}
					lat.add(time.Since(at))
				}
			}()
		}
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			at := start.Add(time.Duration(i) * time.Second / perSecond)
			time.Sleep(time.Until(at))
			due <- at
		}
		close(due)
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		lat.report(b, "")
	})
}

// BenchmarkRunTransition: 1,000 workers each advancing their own run, the
// workflow engine's write pattern (a run write with its action-state event).
func BenchmarkRunTransition(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		const writers = 1000
		s := benchStore(b, durable)
		ctx := context.Background()
		runs := make([]*state.WorkflowRun, writers)
		for w := range writers {
			r := &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%04d", w), Number: 1, State: state.RunRunning}
			for a := range 8 {
				r.Actions = append(r.Actions, state.RunAction{Task: "os", Name: fmt.Sprintf("action-%d", a), Image: "quay.io/tinkerbell/actions/image2disk:latest", State: state.RunPending})
			}
			var err error
			runs[w], err = s.PutRun(ctx, state.ActorReconciler, r)
			require.NoError(b, err)
		}
		concurrently(b, writers, "transitions", func(w, i int) error {
			r := *runs[w]
			r.Actions = slices.Clone(r.Actions)
			a := &r.Actions[i%len(r.Actions)]
			a.Attempt++
			a.State = state.RunRunning
			out, err := s.PutRun(ctx, state.Worker(r.Workflow), &r)
			runs[w] = out
			return err
		})
	})
}

// BenchmarkWatchLatency: 1,000 watchers follow the log; each op appends one
// event and waits until every watcher has received it. fanout-p99-ms is from
// Apply returning to the last watcher receiving; total-p99-ms includes the
// commit.
func BenchmarkWatchLatency(b *testing.B) {
	durabilities(b, func(b *testing.B, durable bool) {
		const watchers = 1000
		s := benchStore(b, durable)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan uint64, watchers)
		var wg sync.WaitGroup
		for range watchers {
			w, err := s.Watch(ctx, 0, state.EventFilter{})
			require.NoError(b, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ev := range w.Events() {
					got <- ev.Seq
				}
			}()
		}
		var fanout, total latencies
		for b.Loop() {
			start := time.Now()
			res, err := s.Apply(ctx, &state.Batch{Events: []state.Event{{Type: state.EventSync, Message: "tick"}}})
			if err != nil {
				b.Fatal(err)
			}
			committed := time.Now()
			for range watchers {
				if seq := <-got; seq != res.Events[0].Seq {
					b.Fatalf("watcher got %d, want %d", seq, res.Events[0].Seq)
				}
			}
			fanout.add(time.Since(committed))
			total.add(time.Since(start))
		}
		fanout.report(b, "fanout-")
		total.report(b, "total-")
		cancel()
		wg.Wait()
	})
}
