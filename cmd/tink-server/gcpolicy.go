package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// An idle tink-server holds its fleet (objects, the loader's caches, the
// store's memtable) and allocates almost nothing, yet at Go's default GOGC
// of 100 its heap may grow to twice what is live before the next
// collection, and the runtime keeps what it once used: a synced
// 10,000-machine fleet sat at about 650 MiB of RSS for under 300 MB live.
// Collecting more often costs CPU in proportion to what is allocated, which
// is what a busy server does and an idle one does not: a collection marks
// the live heap (about 1.5 ns a byte here) once per GOGC% of it allocated,
// so its cost is the allocation rate times 1.5 ns times 100/GOGC, whatever
// the heap's size. So idleGC watches the allocation rate: once the server
// has allocated under 1 MiB/s for a while (at GOGC 10, at most about 1.5%
// of a core spent collecting) it lowers GOGC to idleGCPercent and hands the
// free memory back to the system once; as soon as it allocates more than
// 4 MiB/s (a sync, a burst of workers) it restores the GOGC it started
// with, so a busy server runs exactly as it would without the policy. A
// rule relative to the heap's size (an earlier version) lowered GOGC at
// 100,000 machines while the engine still allocated tens of MB a second,
// and the server spent 80% of a core.
//
// An operator who sets GOGC or GOMEMLIMIT has chosen a policy of their own:
// idleGC then does nothing (--idle-gc=false also turns it off).

// Defaults of idleGC; see newIdleGC.
const (
	// idleGCWindow is how often the allocation rate is read.
	idleGCWindow = 2 * time.Second
	// idleGCQuiet is how many quiet windows in a row make the server idle.
	idleGCQuiet = 5
	// idleGCQuietBytes is the most a quiet window allocates (1 MiB/s);
	// idleGCBusyBytes the least a window allocates that ends the idle
	// state (4 MiB/s). Between the two nothing changes, so a server near
	// the edge does not flip back and forth.
	idleGCQuietBytes = 2 << 20
	idleGCBusyBytes  = 8 << 20
	// idleGCPercent is GOGC while idle: a collection after each tenth of
	// the live heap allocated.
	idleGCPercent = 10
	// idleGCMinLive is the live heap below which the policy leaves GOGC
	// alone: a small fleet's memory is not worth the collections.
	idleGCMinLive = 32 << 20
)

// idleGC lowers GOGC while the process is idle; see above. Run owns its
// goroutine's whole life.
type idleGC struct {
	log *slog.Logger
	// window, quiet, quietBytes, busyBytes, percent and minLive are the
	// constants above (tests shorten the window).
	window                time.Duration
	quiet                 int
	quietBytes, busyBytes uint64
	percent               int
	minLive               uint64
	// read returns the bytes allocated since the start and the live heap
	// after the last collection; setPercent and release are
	// debug.SetGCPercent and debug.FreeOSMemory (tests replace all three).
	read       func() (allocated, live uint64)
	setPercent func(int) int
	release    func()
}

// newIdleGC returns the policy for this process, or nil when getenv shows
// that the operator set the runtime's memory policy.
func newIdleGC(log *slog.Logger, getenv func(string) string) *idleGC {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		log.Debug("idle collection policy off: GOGC or GOMEMLIMIT is set")
		return nil
	}
	return &idleGC{log: log, window: idleGCWindow, quiet: idleGCQuiet, quietBytes: idleGCQuietBytes, busyBytes: idleGCBusyBytes,
		percent: idleGCPercent, minLive: idleGCMinLive,
		read: readHeap, setPercent: debug.SetGCPercent, release: debug.FreeOSMemory}
}

// readHeap reads the runtime's cumulative allocations and the live heap.
func readHeap() (allocated, live uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// Run applies the policy until ctx ends, then restores GOGC.
func (p *idleGC) Run(ctx context.Context) error {
	t := time.NewTicker(p.window)
	defer t.Stop()
	// SetGCPercent is the only way to read GOGC: read it, put it back.
	busyPercent := p.setPercent(-1)
	p.setPercent(busyPercent)
	idle, quiet := false, 0
	last, _ := p.read()
	for {
		select {
		case <-ctx.Done():
			if idle {
				p.setPercent(busyPercent)
			}
			return nil
		case <-t.C:
		}
		allocated, live := p.read()
		delta := allocated - last
		last = allocated
		switch {
		case idle && delta > p.busyBytes:
			idle, quiet = false, 0
			p.setPercent(busyPercent)
			p.log.Debug("busy again: garbage collection back to its default", "gogc", busyPercent, "allocated", delta, "live", live)
		case !idle && live >= p.minLive && delta <= p.quietBytes:
			quiet++
			if quiet < p.quiet {
				continue
			}
			idle = true
			p.setPercent(p.percent)
			p.release()
			after, _ := p.read()
			last = after
			p.log.Debug("idle: collecting more often and returning free memory", "gogc", p.percent, "live", live)
		case !idle:
			quiet = 0
		}
	}
}
