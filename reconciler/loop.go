package reconciler

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Source yields snapshots of the repository; gitsource.Git and
// gitsource.Dir implement it.
type Source interface {
	// Snapshot returns the latest snapshot, fetching when there is none.
	Snapshot(ctx context.Context) (*gitsource.Snapshot, error)
	// Changes signals that a snapshot with a new revision is available.
	Changes() <-chan struct{}
	// Trigger asks for a fetch now (a webhook).
	Trigger()
	// Status reports when the source last synced.
	Status() gitsource.Status
}

// DefaultSyncTimeout bounds one sync: load, plan and apply.
const DefaultSyncTimeout = 2 * time.Minute

// SyncResult is how one sync of the Loop ended, as Loop.OnSync reports it.
type SyncResult string

// Sync results. Every sync the loop runs ends in exactly one of them.
const (
	// SyncApplied: the revision was applied and changed objects, runs or
	// the revision in effect.
	SyncApplied SyncResult = "applied"
	// SyncUnchanged: the revision was in effect already and there was
	// nothing to do (a restart, or an operator's "sync now").
	SyncUnchanged SyncResult = "unchanged"
	// SyncInvalid: the repository has errors; nothing was applied.
	SyncInvalid SyncResult = "invalid"
	// SyncBlocked: the plan was refused (it prunes too much); nothing was
	// applied.
	SyncBlocked SyncResult = "blocked"
	// SyncFailed: there was no snapshot, or the store failed.
	SyncFailed SyncResult = "failed"
)

// Loop runs syncs one at a time: at start, whenever the source has a new
// revision, and when an operator asks. Suspend stops it from applying
// anything until Resume; the suspension is kept in the store, so it
// survives a restart.
type Loop struct {
	// OnSync, if set, is told how every sync the loop runs ended, the
	// revision it synced (empty when there was no snapshot) and how long
	// it took, snapshot included. Syncs not run (suspended, or a revision
	// synced already) are not reported. Set it before Run; metrics hang
	// here, and it runs on the loop's goroutine, so it must return at
	// once.
	OnSync func(result SyncResult, revision string, took time.Duration)
	// RetryBackoff and RetryMaxBackoff space the retries of a transient
	// failure: RetryBackoff, doubling up to RetryMaxBackoff (defaults
	// DefaultRetryBackoff and DefaultRetryMaxBackoff). Set them before Run.
	RetryBackoff, RetryMaxBackoff time.Duration

	r       *Reconciler
	src     Source
	timeout time.Duration

	requests chan chan error
	kick     chan struct{} // a sync without waiting for it (after Resume)
	ready    atomic.Bool
	mu       sync.Mutex
	lastSeen string // revision of the last snapshot synced
	retry    retrier
}

// NewLoop returns a loop syncing src into r's store; it does no I/O until
// Run.
func NewLoop(r *Reconciler, src Source, timeout time.Duration) *Loop {
	if timeout <= 0 {
		timeout = DefaultSyncTimeout
	}
	return &Loop{r: r, src: src, timeout: timeout, requests: make(chan chan error), kick: make(chan struct{}, 1)}
}

// Run syncs until ctx ends, then returns nil. A failed sync is recorded in
// the sync status with its class (see syncfailure.go): a transient one is
// retried with backoff, a stalled one waits for a new revision or a
// request, a suspended loop for Resume.
func (l *Loop) Run(ctx context.Context) error {
	l.retry.min, l.retry.max = cmp.Or(l.RetryBackoff, DefaultRetryBackoff), cmp.Or(l.RetryMaxBackoff, DefaultRetryMaxBackoff)
	defer l.retry.stop()
	l.settle(l.syncOnce(ctx, true))
	l.ready.Store(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.src.Changes():
			l.settle(l.syncOnce(ctx, false))
		case <-l.kick:
			l.settle(l.syncOnce(ctx, false))
		case <-l.retry.C():
			l.settle(l.syncOnce(ctx, true))
		case done := <-l.requests:
			err := l.syncOnce(ctx, true)
			l.settle(err)
			done <- err
		}
	}
}

// Ready reports whether the first sync has finished (applied or failed).
func (l *Loop) Ready() bool { return l.ready.Load() }

// Sync runs a sync now and waits for it. It fetches first, so a commit
// pushed a moment ago is seen. ECONFLICT while reconciliation is suspended.
func (l *Loop) Sync(ctx context.Context) error {
	st, err := l.r.store.SyncStatus(ctx)
	if err != nil {
		return err
	}
	if st.Suspended {
		return state.Errorf(state.ECONFLICT, "reconciliation is suspended; resume it first")
	}
	if err := l.fetchNow(ctx); err != nil {
		return err
	}
	done := make(chan error, 1)
	select {
	case l.requests <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchNow asks the source to fetch (or rescan) and waits until it has:
// "sync now" must see the commit pushed a moment ago.
func (l *Loop) fetchNow(ctx context.Context) error {
	start := time.Now()
	l.src.Trigger()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := l.src.Status()
		if st.LastSync.After(start) {
			return nil
		}
		if st.LastErrorTime.After(start) {
			return state.Errorf(state.EUNAVAILABLE, "fetch %s: %s", st.Source, st.LastError)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Suspend stops applying revisions until Resume; it is recorded with an
// event naming who asked.
func (l *Loop) Suspend(ctx context.Context, actor state.Actor) error {
	return l.setSuspended(ctx, actor, true)
}

// Resume applies revisions again, starting with the latest one.
func (l *Loop) Resume(ctx context.Context, actor state.Actor) error {
	if err := l.setSuspended(ctx, actor, false); err != nil {
		return err
	}
	// Whatever arrived while suspended applies now.
	l.src.Trigger()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

func (l *Loop) setSuspended(ctx context.Context, actor state.Actor, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := l.r.store.SyncStatus(ctx)
	if err != nil {
		return err
	}
	if st.Suspended == on {
		return nil
	}
	st.Suspended = on
	waiting(st, actor, on)
	msg := "reconciliation resumed"
	if on {
		msg = "reconciliation suspended: new revisions are not applied until resumed"
	}
	_, err = l.r.store.Apply(ctx, &state.Batch{Actor: actor, Sync: st, Events: []state.Event{{Type: state.EventSync, Message: msg}}})
	return err
}

// syncOnce takes the latest snapshot and syncs it. force syncs even when
// the revision was synced already (an operator asked, or the first sync).
func (l *Loop) syncOnce(ctx context.Context, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	st, err := l.r.store.SyncStatus(ctx)
	if err != nil {
		l.observe(SyncFailed, "", start)
		return l.transient(ctx, "", "the sync status could not be read (the server's log has the details)", fmt.Errorf("read sync status: %w", err))
	}
	if st.Suspended {
		l.r.log.Info("reconciliation suspended; not syncing")
		return nil
	}
	snap, err := l.src.Snapshot(ctx)
	if err != nil {
		l.observe(SyncFailed, "", start)
		return l.transient(ctx, "", "the repository could not be read (see the source's last error)", fmt.Errorf("read repository: %w", err))
	}
	if !force && snap.Revision == l.lastSeen {
		return nil
	}
	out, err := l.r.Sync(ctx, FromSnapshot(snap))
	if err != nil {
		l.observe(SyncFailed, snap.Revision, start)
		return l.transient(ctx, snap.Revision, "applying the revision failed (the server's log has the details)", err)
	}
	l.lastSeen = snap.Revision
	if len(out.Errors) > 0 {
		l.observe(SyncInvalid, snap.Revision, start)
		return state.Errorf(state.EINVALID, "%s has %d error(s); %s", snap.Revision, len(out.Errors), out.Errors[0].Error())
	}
	if out.Plan != nil && out.Plan.Blocked != "" {
		l.observe(SyncBlocked, snap.Revision, start)
		return state.Errorf(state.ECONFLICT, "%s", out.Plan.Blocked)
	}
	if out.Changed {
		l.observe(SyncApplied, snap.Revision, start)
	} else {
		l.observe(SyncUnchanged, snap.Revision, start)
	}
	return nil
}

// observe reports a sync's result to OnSync.
func (l *Loop) observe(res SyncResult, revision string, start time.Time) {
	if l.OnSync != nil {
		l.OnSync(res, revision, time.Since(start))
	}
}

// FromSnapshot adapts a gitsource snapshot: its files keep their blob
// hashes, so the loader parses only files that changed.
func FromSnapshot(s *gitsource.Snapshot) Snapshot {
	commit := s.Revision
	if s.Commit != "" {
		short := s.Commit
		if len(short) > 12 {
			short = short[:12]
		}
		subject, _, _ := strings.Cut(s.Message, "\n")
		commit = fmt.Sprintf("%s (%s by %s: %s)", s.Revision, short, s.Author, strings.TrimSpace(subject))
	}
	fsys := s.FS()
	if _, ok := fsys.(schema.HashFS); !ok {
		hashes := make(map[string]string, len(s.Files))
		for _, f := range s.Files {
			hashes[f.Path] = f.Hash
		}
		fsys = hashFS{FS: fsys, hashes: hashes}
	}
	return Snapshot{Revision: s.Revision, FS: fsys, Commit: commit}
}

// hashFS gives schema.Loader the blob hash of each file.
type hashFS struct {
	fs.FS
	hashes map[string]string
}

// FileHash returns the blob hash of name.
func (h hashFS) FileHash(name string) (string, bool) {
	v, ok := h.hashes[name]
	return v, ok
}

// ReadDir, ReadFile and Stat keep the snapshot's own fast paths.
func (h hashFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(h.FS, name) }

// ReadFile reads a whole file.
func (h hashFS) ReadFile(name string) ([]byte, error) { return fs.ReadFile(h.FS, name) }

// Stat describes a file.
func (h hashFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(h.FS, name) }
