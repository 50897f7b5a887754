package gitsource

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Status is what a Source reports about itself. It holds no credentials.
type Status struct {
	// Source is the repository URL without userinfo, or the directory.
	Source string
	// Ref is what is followed: "branch main", "tag v1", "commit <hash>",
	// or "directory".
	Ref string
	// Path is the configured subdirectory ("." for the root).
	Path string
	// Revision is the revision of the latest snapshot; empty before the
	// first successful sync.
	Revision string
	// LastSync is when the last sync succeeded (found a change or not).
	LastSync time.Time
	// LastChange is when Revision last changed.
	LastChange time.Time
	// LastFetch is when objects were last fetched from the remote (Git).
	LastFetch time.Time
	// Checks counts the times the remote's refs were listed (Git), or the
	// directory was read (Dir).
	Checks int64
	// Fetches counts the fetches made (Git). A remote that has not moved
	// adds checks but no fetches.
	Fetches int64
	// LastError is the error of the last sync, empty once one succeeds.
	LastError string
	// LastErrorTime is when the last error happened; it stays set after
	// a later success.
	LastErrorTime time.Time
	// Failures counts consecutive failed syncs.
	Failures int
	// NextSync is when Run will sync next; zero when Run is not running.
	NextSync time.Time
}

// tracker holds what both sources share: the latest snapshot, the status,
// the notification channels and the lock that serialises syncs.
type tracker struct {
	mu      sync.Mutex
	latest  *Snapshot
	status  Status
	changes chan struct{}
	trigger chan struct{}
	// syncing is held (a value sent) while a sync runs; a channel rather
	// than a mutex so that waiting for it honours a context.
	syncing chan struct{}
	running chan struct{}
}

func newTracker(st Status) *tracker {
	return &tracker{
		status:  st,
		changes: make(chan struct{}, 1),
		trigger: make(chan struct{}, 1),
		syncing: make(chan struct{}, 1),
		running: make(chan struct{}, 1),
	}
}

// lockSync waits until no other sync runs.
func (t *tracker) lockSync(ctx context.Context) error {
	select {
	case t.syncing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *tracker) unlockSync() { <-t.syncing }

// startRun marks Run as running, refusing a second one.
func (t *tracker) startRun() error {
	select {
	case t.running <- struct{}{}:
		return nil
	default:
		return errors.New("Run is already running on this source")
	}
}

func (t *tracker) stopRun() {
	t.mu.Lock()
	t.status.NextSync = time.Time{}
	t.mu.Unlock()
	<-t.running
}

func (t *tracker) snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest
}

// syncOnce returns the latest snapshot, running sync first when there is
// none.
func (t *tracker) syncOnce(ctx context.Context, sync func(context.Context) error) (*Snapshot, error) {
	if s := t.snapshot(); s != nil {
		return s, nil
	}
	if err := t.lockSync(ctx); err != nil {
		return nil, err
	}
	defer t.unlockSync()
	if s := t.snapshot(); s != nil {
		// Run synced while we waited.
		return s, nil
	}
	if err := sync(ctx); err != nil {
		return nil, err
	}
	if s := t.snapshot(); s != nil {
		return s, nil
	}
	return nil, errors.New("sync produced no snapshot")
}

// publish makes s the latest snapshot and notifies when its revision is
// new. It reports whether it was.
func (t *tracker) publish(s *Snapshot, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.latest == nil || t.latest.Revision != s.Revision
	t.latest = s
	if changed {
		t.status.Revision = s.Revision
		t.status.LastChange = now
		select {
		case t.changes <- struct{}{}:
		default:
		}
	}
	return changed
}

// update changes the status under the lock.
func (t *tracker) update(f func(*Status)) {
	t.mu.Lock()
	f(&t.status)
	t.mu.Unlock()
}

// finish records the outcome of a sync.
func (t *tracker) finish(err error, now time.Time) {
	t.update(func(st *Status) {
		if err != nil {
			st.LastError = err.Error()
			st.LastErrorTime = now
			st.Failures++
			return
		}
		st.LastError = ""
		st.Failures = 0
		st.LastSync = now
	})
}

func (t *tracker) getStatus() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

func (t *tracker) doTrigger() {
	select {
	case t.trigger <- struct{}{}:
	default:
	}
}

// nextDelay is the wait before the next sync: the poll interval with ±10%
// jitter, or after failures an exponential backoff.
func (t *tracker) nextDelay(cfg Config) time.Duration {
	t.mu.Lock()
	failures := t.status.Failures
	t.mu.Unlock()
	var d time.Duration
	if failures == 0 {
		d = jitter(cfg.PollInterval, 0.1)
	} else {
		// Between half and all of the backoff: servers that failed
		// together do not retry together.
		b := backoff(failures, cfg.RetryMin, cfg.PollInterval)
		d = b/2 + rand.N(b/2+1)
	}
	t.update(func(st *Status) { st.NextSync = time.Now().Add(d) })
	return d
}

// backoff is lo doubled per failure after the first, capped at hi.
func backoff(failures int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// jitter spreads d uniformly over d±frac·d.
func jitter(d time.Duration, frac float64) time.Duration {
	spread := time.Duration(float64(d) * frac)
	if spread <= 0 {
		return d
	}
	return d - spread + rand.N(2*spread+1)
}
