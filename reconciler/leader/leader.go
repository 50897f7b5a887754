// Package leader elects the one replica that runs what must run once (the
// Git sync loop, the workflow timers, BMC actions, prune) when several
// tink-servers share a store.
//
// Leadership is a lease in the store (state/postgres) with a fencing token.
// The holder renews it every TTL/3; a replica that cannot renew in time
// steps down on its own clock before the lease can have expired on the
// database's, and every write it does as leader carries the token
// (state.WithFence), which the store checks in the writing transaction. So
// a leader that was paused (SIGSTOP, a long GC, a frozen VM) or cut off and
// wakes after another replica took over can neither write nor, since its
// leader context is cancelled first, start a BMC call or an apply: it
// finds it is no longer leader and steps down.
//
// A new leader takes over at most TTL plus one retry interval (TTL/5) after
// the old one stopped renewing; one that shuts down cleanly releases the
// lease, so the next takes over within the retry interval.
package leader

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Leases is the store's lease primitives (state/postgres implements them).
type Leases interface {
	TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (token uint64, ok bool, err error)
	RenewLease(ctx context.Context, name, holder string, token uint64, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string, token uint64) error
}

// Lease is the name of the leader lease.
const Lease = "leader"

// DefaultTTL is how long a lease runs without renewal: the bound on how
// long a fleet goes without a leader after one dies.
const DefaultTTL = 15 * time.Second

// Config configures an Elector.
type Config struct {
	Leases Leases
	// Name is this replica's name (unique among the replicas).
	Name string
	// TTL is the lease's length; default DefaultTTL.
	TTL time.Duration
	Log *slog.Logger
	// OnChange, if set, is told when this replica becomes leader or stops
	// being leader (for metrics and logs).
	OnChange func(leader bool)
	// Now is the clock of the local deadline; default time.Now.
	Now func() time.Time
}

// Elector takes and keeps the leader lease. The zero Elector is not usable;
// build it with New. A nil *Elector is always leader (a store only one
// process opens), with no fence.
type Elector struct {
	cfg Config

	mu       sync.Mutex
	token    uint64
	until    time.Time // local deadline: leader only before it
	term     context.Context
	endTerm  context.CancelFunc
	changed  chan struct{} // closed and replaced when leadership changes
	takeover time.Time     // when this replica last became leader
}

// New returns an Elector; it does nothing until Run.
func New(cfg Config) *Elector {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Elector{cfg: cfg, changed: make(chan struct{})}
}

// Run campaigns for the lease and keeps it until ctx ends, then releases
// it.
func (e *Elector) Run(ctx context.Context) error {
	retry := e.cfg.TTL / 5
	renew := e.cfg.TTL / 3
	for {
		e.mu.Lock()
		leading, token := e.term != nil, e.token
		e.mu.Unlock()
		wait := retry
		if leading {
			wait = renew
			e.renew(ctx, token)
		} else {
			e.campaign(ctx)
			e.mu.Lock()
			if e.term != nil {
				wait = renew
			}
			e.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			leading, token = e.term != nil, e.token
			e.mu.Unlock()
			if leading {
				e.stepDown("shutting down")
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := e.cfg.Leases.ReleaseLease(rctx, Lease, e.cfg.Name, token); err != nil {
					e.cfg.Log.Warn("release the leader lease", "err", err)
				}
				cancel()
			}
			return nil
		case <-time.After(e.untilNext(wait)):
		}
	}
}

// untilNext is how long to sleep: wait, but never past the local deadline
// of a lease held, so that a renewal that fails is noticed in time.
func (e *Elector) untilNext(wait time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term != nil {
		if left := e.until.Sub(e.cfg.Now()); left < wait {
			return max(left, time.Millisecond)
		}
	}
	return wait
}

func (e *Elector) campaign(ctx context.Context) {
	start := e.cfg.Now()
	cctx, cancel := context.WithTimeout(ctx, e.cfg.TTL/3)
	token, ok, err := e.cfg.Leases.TryAcquireLease(cctx, Lease, e.cfg.Name, e.cfg.TTL)
	cancel()
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("campaign for the leader lease", "err", err)
		}
		return
	}
	e.mu.Lock()
	e.token = token
	e.until = start.Add(e.cfg.TTL - e.cfg.TTL/10)
	term, end := context.WithCancel(ctx)
	e.term = state.WithFence(term, state.Fence{Lease: Lease, Token: token})
	e.endTerm = end
	e.takeover = e.cfg.Now()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	e.cfg.Log.Info("became leader", "replica", e.cfg.Name, "token", token)
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(true)
	}
}

func (e *Elector) renew(ctx context.Context, token uint64) {
	if e.cfg.Now().After(e.deadline()) {
		e.stepDown("the lease ran out before it could be renewed")
		return
	}
	start := e.cfg.Now()
	cctx, cancel := context.WithDeadline(ctx, e.deadline())
	ok, err := e.cfg.Leases.RenewLease(cctx, Lease, e.cfg.Name, token, e.cfg.TTL)
	cancel()
	switch {
	case err == nil && ok:
		e.mu.Lock()
		e.until = start.Add(e.cfg.TTL - e.cfg.TTL/10)
		e.mu.Unlock()
	case err == nil:
		e.stepDown("another replica holds the lease")
	case e.cfg.Now().After(e.deadline()):
		e.stepDown("the lease could not be renewed: " + err.Error())
	default:
		e.cfg.Log.Warn("renew the leader lease; retrying", "err", err)
	}
}

func (e *Elector) deadline() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.until
}

// stepDown ends the term: its context is cancelled, so leader work stops.
func (e *Elector) stepDown(why string) {
	e.mu.Lock()
	if e.term == nil {
		e.mu.Unlock()
		return
	}
	e.endTerm()
	e.term, e.endTerm = nil, nil
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	e.cfg.Log.Warn("stepped down as leader", "replica", e.cfg.Name, "why", why)
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(false)
	}
}

// Leader returns the context of the current term when this replica leads:
// it carries the fence and is cancelled when the term ends. It checks the
// local deadline itself, so a replica that was paused past its lease sees
// false at once, before its renewal goroutine has even run.
func (e *Elector) Leader() (context.Context, bool) {
	if e == nil {
		return nil, false
	}
	e.mu.Lock()
	term, until := e.term, e.until
	e.mu.Unlock()
	if term == nil {
		return nil, false
	}
	if e.cfg.Now().After(until) {
		e.stepDown("the lease ran out (the process was paused or cut off)")
		return nil, false
	}
	return term, true
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool {
	_, ok := e.Leader()
	return ok
}

// Name is the replica's name.
func (e *Elector) Name() string { return e.cfg.Name }

// Lead runs fn with the term's context each time this replica becomes
// leader, until ctx ends; fn must return when its context ends.
func (e *Elector) Lead(ctx context.Context, fn func(term context.Context)) {
	for ctx.Err() == nil {
		e.mu.Lock()
		changed := e.changed
		e.mu.Unlock()
		if term, ok := e.Leader(); ok {
			fn(term)
			select {
			case <-term.Done():
			case <-ctx.Done():
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}
