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
// is what a busy server does and an idle one does not. So idleGC watches the
// allocation rate: once the server has allocated little for a while it
// lowers GOGC to idleGCPercent and hands the free memory back to the
// system once; as soon as it allocates again (a sync, a burst of workers)
// it restores the GOGC it started with, so a busy server runs exactly as
// it would without the policy.
//
// An operator who sets GOGC or GOMEMLIMIT has chosen a policy of their own:
// idleGC then does nothing (--idle-gc=false also turns it off).

// Defaults of idleGC; see newIdleGC.
const (
	// idleGCWindow is how often the allocation rate is read.
	idleGCWindow = 2 * time.Second
	// idleGCQuiet is how many quiet windows in a row make the server idle.
	idleGCQuiet = 5
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
	// window, quiet, percent and minLive are the constants above (tests
	// shorten the window).
	window  time.Duration
	quiet   int
	percent int
	minLive uint64
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
	return &idleGC{log: log, window: idleGCWindow, quiet: idleGCQuiet, percent: idleGCPercent, minLive: idleGCMinLive,
		read: readHeap, setPercent: debug.SetGCPercent, release: debug.FreeOSMemory}
}

// readHeap reads the runtime's cumulative allocations and the live heap.
func readHeap() (allocated, live uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// Run applies the policy until ctx ends, then restores GOGC.
//
// A window is quiet when the server allocated at most a quarter of what
// an idle collection waits for (live/percent): idle, the policy then costs
// at most one collection per quiet*window. It is busy when it allocated
// more than a whole idle collection's worth in one window; between the
// two, nothing changes, so a server near the edge does not flip back and
// forth.
func (p *idleGC) Run(ctx context.Context) error {
	t := time.NewTicker(p.window)
	defer t.Stop()
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
		step := live * uint64(p.percent) / 100
		switch {
		case idle && delta > step:
			idle, quiet = false, 0
			p.setPercent(busyPercent)
			p.log.Debug("busy again: garbage collection back to its default", "gogc", busyPercent, "allocated", delta, "live", live)
		case !idle && live >= p.minLive && delta <= step/4:
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
