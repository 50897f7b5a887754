// Package workflow runs workflow runs: it starts the oldest waiting run of
// each machine, renders its template once at start and keeps that
// rendering, hands actions to the machine's worker strictly in order,
// takes the worker's reports, enforces action and global timeouts with
// its own timers, retries and cancels.
//
// All state lives in the store; the engine keeps a copy of the runs that
// have not ended and writes every transition durably (state.Store.PutRun,
// whose group commit lets concurrent runs share disk syncs) before it
// answers. A restarted engine reads the active runs back, and the stored
// deadlines re-arm its timers, so nothing is handed out twice unless its
// attempt timed out.
package workflow

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Preparer does a run's boot actions (power, PXE, virtual media) before
// its first action is handed out. The BMC package implements it; nil
// skips PREPARING.
type Preparer interface {
	Prepare(ctx context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error
}

// Finisher undoes a run's boot actions once the run has ended (eject the
// virtual media, run customboot's post actions). A Preparer that also
// implements it is called for every ended run whose workflow has
// bootOptions.
type Finisher interface {
	Finish(ctx context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error
}

// Observer is told what the engine's metrics need. Its methods run on the
// engine's hot paths (thousands of transitions a second under load), after
// the change they report is durable: they must return at once, without
// I/O or contended locks.
type Observer interface {
	// ActionEnded reports an attempt of an action that ended SUCCESS,
	// FAILED or TIMEOUT (a failed attempt with retries left is followed
	// by another), with the template of its run and how long the attempt
	// took (its FinishedAt - StartedAt).
	ActionEnded(template, action string, result state.RunState, took time.Duration)
	// WorkerSeen reports that the worker of a hardware asked for work or
	// reported on an action, at the engine's clock.
	WorkerSeen(namespace, hardware string, at time.Time)
}

// Gate holds back waiting runs that may not start yet: a workflow set
// starts its machines in waves (reconciler.Rollout implements it).
type Gate interface {
	// Hold is asked once per Step with every run that has not ended; it
	// returns the waiting runs that must keep waiting, each with why.
	Hold(ctx context.Context, active []*state.WorkflowRun) map[state.RunKey]string
}

// Config configures an Engine.
type Config struct {
	Store  state.Store
	Loader *schema.Loader // nil: a new one
	Log    *slog.Logger   // nil: discard
	Now    func() time.Time
	// Tick is how often deadlines are checked and waiting runs started
	// (default 200 ms: a timeout is seen well within a second).
	Tick     time.Duration
	Preparer Preparer
	// Observer is told about ended action attempts and workers seen, for
	// metrics; nil tells nobody.
	Observer Observer
	// Leader, when set, says whether this replica leads (several servers
	// on one store, see replicas.go) and returns the leader term's context,
	// which fences the writes done with it. Only the leader starts runs,
	// enforces timeouts and does boot actions; nil: this engine always
	// leads.
	Leader func() (context.Context, bool)
	// Gate, if set, decides which waiting runs may start.
	Gate Gate
}

// Engine runs workflow runs. Build it with New; Run drives its timers.
type Engine struct {
	store  state.Store
	loader *schema.Loader
	log    *slog.Logger
	now    func() time.Time
	tick   time.Duration
	prep   Preparer
	obs    Observer
	leader func() (context.Context, bool)
	term   context.Context // the leader term Step last ran in (replicas.go)
	gate   Gate

	mu   sync.Mutex
	runs map[state.RunKey]*state.WorkflowRun // runs that have not ended
	// runsGen counts changes to runs; sorted is runs oldest first as of
	// change sortedGen (see active).
	runsGen, sortedGen uint64
	sorted             []*state.WorkflowRun
	// due is when checkDeadlines must look at the runs again if none
	// changed since change dueGen (zero: never); dueValid is false when it
	// must look at every step.
	due      time.Time
	dueGen   uint64
	dueValid bool
	// byWorker indexes RUNNING runs by their current action's worker (a
	// MAC or a hardware name), so a worker asking for work looks at its
	// own runs, not the whole fleet's.
	byWorker map[string]map[state.RunKey]bool
	// pendingRead is when waiting runs were last read from the store;
	// pendingDirty says a new PENDING run was written since (the store's
	// event log tells, see watchPending).
	pendingRead  time.Time
	pendingDirty bool
	locks        map[state.RunKey]*sync.Mutex // one writer per run
	waiters      map[string][]chan struct{}   // by hardware key
	loaded       bool
	// loadedAt is the latest event's sequence number when the runs were
	// last loaded: the copy holds every write up to it.
	loadedAt uint64
	// writing and ended tell followRuns which events are of this engine's
	// own writes, which it records itself (see replicas.go): writing holds
	// the runs being written, with the highest version of an event of
	// theirs that followRuns left to the write (0: none); ended the version
	// of a write that ended its run, until followRuns has seen its event.
	writing map[state.RunKey]uint64
	ended   map[state.RunKey]uint64

	preparing map[state.RunKey]bool // boot actions in flight
	wg        sync.WaitGroup        // goroutines doing boot actions
	// runCtx is Run's context: boot actions after a run ends belong to the
	// engine, not to the request whose report ended the run.
	runCtx context.Context

	macMu    sync.Mutex
	macs     map[string]state.ObjectKey // MAC -> hardware, rebuilt on a miss
	macsRead time.Time
	// hwCache keeps decoded hardware: every worker request names its
	// machine, and reading and decoding it each time costs more than the
	// transition itself. While watchHardware follows the hardware's
	// events, an entry holds until a hardware changes (hwGen counts the
	// changes seen); otherwise for hwTTL.
	hwCache   map[string]cachedHardware
	hwGen     uint64
	hwWatched bool
	hwTTL     time.Duration

	tmplMu    sync.Mutex
	templates map[state.ObjectKey]cachedTemplate // see templateOf
}

// New returns an Engine; it does no I/O until Run (or the first call).
func New(cfg Config) *Engine {
	e := &Engine{store: cfg.Store, loader: cfg.Loader, log: cfg.Log, now: cfg.Now, tick: cfg.Tick, prep: cfg.Preparer, obs: cfg.Observer, leader: cfg.Leader, gate: cfg.Gate, hwTTL: hardwareTTL,
		runs: map[state.RunKey]*state.WorkflowRun{}, locks: map[state.RunKey]*sync.Mutex{}, waiters: map[string][]chan struct{}{},
		byWorker: map[string]map[state.RunKey]bool{}, writing: map[state.RunKey]uint64{}, ended: map[state.RunKey]uint64{},
		preparing: map[state.RunKey]bool{}}
	if e.loader == nil {
		e.loader = schema.NewLoader()
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.tick <= 0 {
		e.tick = 200 * time.Millisecond
	}
	return e
}

// Run loads the active runs, then starts waiting runs and enforces
// deadlines until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	e.runCtx = ctx
	e.mu.Unlock()
	if err := e.load(ctx); err != nil {
		return err
	}
	e.wg.Add(3)
	go func() {
		defer e.wg.Done()
		e.watchPending(ctx)
	}()
	go func() {
		defer e.wg.Done()
		e.watchHardware(ctx)
	}()
	go func() {
		defer e.wg.Done()
		e.followRuns(ctx)
	}()
	t := time.NewTicker(e.tick)
	defer t.Stop()
	defer e.wg.Wait()
	for {
		e.leaderStep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step does what time asks for: times out actions and runs past their
// deadlines, and starts the oldest waiting run of each idle machine. Run
// calls it every Tick; tests call it directly.
func (e *Engine) Step(ctx context.Context) {
	if err := e.load(ctx); err != nil {
		e.log.Error("load runs", "err", err)
		return
	}
	if err := e.refreshPending(ctx); err != nil {
		e.log.Error("read pending runs", "err", err)
	}
	e.checkDeadlines(ctx, e.now())
	e.startWaiting(ctx)
}

// checkDeadlines times out the actions and runs past their deadlines and
// prepares the PREPARING runs.
//
// Looking at every run costs about 300 ns a run (each is its own cache
// miss): at 100,000 runs that wait for their workers, five times a second,
// that was most of a core on a server with nothing to do. So a look that
// finds no run PREPARING remembers the earliest deadline of all (past ones
// included: a timeout whose write failed is tried again), and the next
// look waits for that time unless a run changed since (runsGen).
func (e *Engine) checkDeadlines(ctx context.Context, now time.Time) {
	runs, gen := e.activeGen()
	e.mu.Lock()
	skip := e.dueGen == gen && e.dueValid && (e.due.IsZero() || now.Before(e.due))
	e.mu.Unlock()
	if skip {
		return
	}
	var due time.Time // the earliest deadline; zero: none
	earliest := func(d time.Time) {
		if !d.IsZero() && (due.IsZero() || d.Before(due)) {
			due = d
		}
	}
	preparing := false
	for _, r := range runs {
		if r.State == state.RunPreparing {
			e.prepare(ctx, r.Key())
			preparing = true
			continue
		}
		if r.State != state.RunRunning {
			continue
		}
		key := r.Key()
		earliest(r.Deadline)
		var a *state.RunAction
		if r.CurrentAction < len(r.Actions) {
			if a = &r.Actions[r.CurrentAction]; a.State == state.RunRunning {
				earliest(a.Deadline)
			}
		}
		switch {
		case !r.Deadline.IsZero() && now.After(r.Deadline):
			ended := -1 // the action whose attempt the timeout ends
			run, err := e.transitionRun(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
				changed, i := timeoutRun(r, e.now())
				ended = i
				return changed, nil
			})
			if err == nil && ended >= 0 {
				e.actionEnded(run, ended, state.RunTimeout)
			}
		case a != nil:
			if a.State == state.RunRunning && !a.Deadline.IsZero() && now.After(a.Deadline) {
				idx, attempt := r.CurrentAction, a.Attempt
				ended := false
				run, err := e.transitionRun(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
					ended = timeoutAttempt(r, idx, attempt, e.now())
					return ended, nil
				})
				if err == nil && ended {
					e.actionEnded(run, idx, state.RunTimeout)
				}
			}
		}
	}
	e.mu.Lock()
	// A PREPARING run is looked at again every step: its boot actions may
	// have stopped without moving it on (a read failed, the engine is
	// stopping), and then it is prepared again.
	e.dueGen, e.due, e.dueValid = gen, due, !preparing
	e.mu.Unlock()
}

// notify wakes the workers waiting for work on a machine.
func (e *Engine) notify(hk string) {
	e.mu.Lock()
	ws := e.waiters[hk]
	delete(e.waiters, hk)
	e.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}
