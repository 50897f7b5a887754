package schematest

import (
	"runtime"
	"time"
)

// SampleHeap records the largest heap in use, sampled every 5 ms, into
// peak until stop is called: the peak-memory figure of the fleet
// benchmarks, which runtime.MemStats after the fact cannot give.
func SampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > *peak {
					*peak = ms.HeapInuse
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
