// Package worker is what runs on a machine being provisioned: it asks the
// server for the machine's next action, runs it with a runtime (a process
// on the host, or a container through the Docker Engine), and reports how
// it went. Reports are kept until the server has them, in memory and on
// disk, so a server restart or a worker restart loses none.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// Action is an action handed to this machine, as the server sends it; the
// API's wire type, so worker and server cannot drift apart.
type Action = client.WorkerAction

// Report is what the worker says about an action.
type Report = client.WorkerReport

// Server is the part of the API a worker speaks.
type Server interface {
	// Next long-polls for this machine's next action; nil when none came
	// within wait.
	Next(ctx context.Context, id string, wait time.Duration) (*Action, error)
	// Report delivers a report. An error that Rejected reports as true
	// means the server will never take it (a stale report, a cancelled
	// run): the worker drops it. Any other error is retried. To a report
	// that ends an action the server may answer with the machine's next
	// action, which the worker then runs without asking Next (nil: ask).
	Report(ctx context.Context, id string, r Report) (*Action, error)
	// Rejected reports whether err is a final refusal.
	Rejected(err error) bool
}

// Result is how an action ended on the machine.
type Result struct {
	State    string // SUCCESS, FAILED or TIMEOUT
	Message  string // the tail of the output, or why it could not run
	Started  time.Time
	Finished time.Time
}

// Runtime runs actions.
type Runtime interface {
	Run(ctx context.Context, a *Action) Result
}

// Worker runs this machine's actions until its context ends.
type Worker struct {
	ID      string // hardware name or MAC
	Server  Server
	Runtime Runtime
	// WorkDir keeps the report waiting for delivery across restarts.
	WorkDir string
	Log     *slog.Logger
	// Wait is the long-poll duration (default 30 s).
	Wait time.Duration
	// RetryMin and RetryMax bound the backoff while the server is away.
	RetryMin, RetryMax time.Duration
}

// Run asks for actions and runs them, one at a time, until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	w.defaults()
	if err := w.deliverPending(ctx); err != nil {
		return nil // ctx ended
	}
	backoff := w.RetryMin
	var next *Action // handed out with the answer to the last report
	for ctx.Err() == nil {
		if next != nil {
			a := next
			next = w.runAction(ctx, a)
			continue
		}
		a, err := w.Server.Next(ctx, w.ID, w.Wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.Log.Warn("ask for next action", "err", err, "retry in", backoff)
			sleep(ctx, jitter(backoff))
			backoff = min(2*backoff, w.RetryMax)
			continue
		}
		backoff = w.RetryMin
		if a == nil {
			continue
		}
		next = w.runAction(ctx, a)
	}
	return nil
}

func (w *Worker) defaults() {
	if w.Wait <= 0 {
		w.Wait = 30 * time.Second
	}
	if w.RetryMin <= 0 {
		w.RetryMin = 500 * time.Millisecond
	}
	if w.RetryMax <= 0 {
		w.RetryMax = 30 * time.Second
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
}

// runAction reports the action started, runs it and reports the result.
// It returns the next action when the server handed it out with its
// answer to the result.
func (w *Worker) runAction(ctx context.Context, a *Action) *Action {
	log := w.Log.With("workflow", a.Workflow, "run", a.Run, "action", a.Name, "attempt", a.Attempt)
	start := time.Now()
	if _, err := w.deliver(ctx, Report{Namespace: a.Namespace, Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: "RUNNING", Started: start}); err != nil {
		if errors.Is(err, errRejected) {
			log.Info("the server refused the action; not running it", "err", err)
		}
		return nil
	}
	log.Info("running action", "image", a.Image)
	res := w.Runtime.Run(ctx, a)
	if ctx.Err() != nil && res.State != "SUCCESS" {
		return nil // stopping: the server times the attempt out
	}
	log.Info("action ended", "state", res.State, "duration", res.Finished.Sub(res.Started))
	if a.Background {
		return nil // the server counted it done when it started
	}
	next, _ := w.deliver(ctx, Report{Namespace: a.Namespace, Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt,
		State: state.RunState(res.State), Message: res.Message, Started: res.Started, Finished: res.Finished})
	return next
}

var errRejected = errors.New("rejected by the server")

// deliver sends a report until the server takes or refuses it, keeping it
// on disk meanwhile, and returns the next action the server handed out
// with its answer, if it did.
func (w *Worker) deliver(ctx context.Context, r Report) (*Action, error) {
	if err := w.savePending(&r); err != nil {
		w.Log.Error("keep report on disk", "err", err)
	}
	backoff := w.RetryMin
	for {
		next, err := w.Server.Report(ctx, w.ID, r)
		switch {
		case err == nil:
			w.clearPending()
			return next, nil
		case w.Server.Rejected(err):
			w.clearPending()
			return nil, fmt.Errorf("%w: %v", errRejected, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		w.Log.Warn("report not delivered; retrying", "err", err, "retry in", backoff)
		sleep(ctx, jitter(backoff))
		backoff = min(2*backoff, w.RetryMax)
	}
}

func (w *Worker) pendingPath() string {
	if w.WorkDir == "" {
		return ""
	}
	return filepath.Join(w.WorkDir, "pending-report.json")
}

func (w *Worker) savePending(r *Report) error {
	p := w.pendingPath()
	if p == "" {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (w *Worker) clearPending() {
	if p := w.pendingPath(); p != "" {
		_ = os.Remove(p)
	}
}

// deliverPending sends a report a previous worker process could not.
func (w *Worker) deliverPending(ctx context.Context) error {
	p := w.pendingPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var r Report
	if json.Unmarshal(b, &r) != nil {
		w.clearPending()
		return nil
	}
	w.Log.Info("delivering a report kept from before a restart", "workflow", r.Workflow, "action", r.Action, "state", r.State)
	// An action handed out with the answer is not run from here: the first
	// Next hands the same action out again.
	_, err = w.deliver(ctx, r)
	if errors.Is(err, errRejected) {
		return nil
	}
	return err
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
