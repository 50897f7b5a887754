package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Failed syncs are classified as flux classifies failed reconciles
// (state.SyncFailure): stalled needs a person and is not retried; waiting
// waits for an operator to resume; transient is retried with a growing
// backoff until a sync applies. The class, its reason and the next retry
// are kept in the sync status, which tink status and /v1/status show.

// Default backoff of transient sync failures.
const (
	DefaultRetryBackoff    = time.Second
	DefaultRetryMaxBackoff = 5 * time.Minute
)

// stalledInvalid is the reason of a revision with errors.
func stalledInvalid(n int) string {
	return fmt.Sprintf("the repository has %d error(s): fix them in Git; this revision is not tried again until the revision changes or a sync is asked for", n)
}

// transientError marks a sync failure that may pass on its own.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// retrier schedules the retries of transient failures. It belongs to the
// loop's goroutine.
type retrier struct {
	min, max time.Duration
	n        int // transient failures in a row
	timer    *time.Timer
}

// C fires when a retry is due; nil (never) when none is scheduled.
func (r *retrier) C() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

// delay is the wait before retry n (1-based): min, doubling, up to max.
func (r *retrier) delay(n int) time.Duration {
	d := r.min
	for i := 1; i < n && d < r.max; i++ {
		d *= 2
	}
	return min(d, r.max)
}

// stop cancels a scheduled retry.
func (r *retrier) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// settle schedules a retry after a transient failure, and forgets the
// failures once a sync did not fail transiently: applied, stalled (a
// person must act) or suspended.
func (l *Loop) settle(err error) {
	l.retry.stop()
	var te *transientError
	if !errors.As(err, &te) {
		l.retry.n = 0
		return
	}
	l.retry.timer = time.NewTimer(l.retry.delay(l.retry.n))
}

// transient records a transient failure of the sync of revision (empty
// when there was no snapshot) in the sync status, with when it will be
// retried, and returns err marked transient. what says what failed, for
// the status: the error's own text may hold internals (paths, the
// store's words), which stay in the log.
func (l *Loop) transient(ctx context.Context, revision, what string, err error) error {
	l.retry.n++
	delay := l.retry.delay(l.retry.n)
	l.r.log.Warn("sync failed; retrying", "revision", revision, "err", err, "retry", l.retry.n, "in", delay)
	// The sync's own context may be what ran out.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, serr := l.r.store.SyncStatus(wctx)
	if serr == nil {
		if revision != "" {
			st.LastAttemptedRevision = revision
		}
		st.Failure, st.Retries = state.FailureTransient, l.retry.n
		st.NextRetryAt = l.r.now().Add(delay)
		st.Reason = fmt.Sprintf("%s; retry %d in %s (transient: retried with backoff until a sync applies)", what, l.retry.n, delay.Round(time.Millisecond))
		_, serr = l.r.store.Apply(wctx, &state.Batch{Actor: state.ActorReconciler, Revision: revision, Sync: st,
			Events: []state.Event{{Type: state.EventError, Message: "sync failed: " + st.Reason}}})
	}
	if serr != nil {
		l.r.log.Error("record failed sync", "err", serr)
	}
	return &transientError{err: err}
}

// waiting is the status of a suspended loop.
func waiting(st *state.SyncStatus, actor state.Actor, on bool) {
	switch {
	case on:
		st.Failure, st.Reason = state.FailureWaiting, fmt.Sprintf("suspended by %s: new revisions are not applied until reconciliation is resumed", actor)
		st.Retries, st.NextRetryAt = 0, time.Time{}
	case st.Failure == state.FailureWaiting:
		st.Failure, st.Reason = "", ""
	}
}
