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
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tinkops/tinkops/reconciler"
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

// finishTimeout bounds the after-run BMC actions of one run.
const finishTimeout = 2 * time.Minute

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

	mu   sync.Mutex
	runs map[state.RunKey]*state.WorkflowRun // runs that have not ended
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

	preparing map[state.RunKey]bool // boot actions in flight
	wg        sync.WaitGroup        // goroutines doing boot actions
	// runCtx is Run's context: boot actions after a run ends belong to the
	// engine, not to the request whose report ended the run.
	runCtx context.Context

	macMu    sync.Mutex
	macs     map[string]state.ObjectKey // MAC -> hardware, rebuilt on a miss
	macsRead time.Time
	// hwCache keeps decoded hardware for a moment: every worker request
	// names its machine, and reading and decoding it each time costs more
	// than the transition itself.
	hwCache map[string]cachedHardware
}

// cachedHardware is a hardware read at a time.
type cachedHardware struct {
	hw   *schema.Hardware
	read time.Time
}

// hardwareTTL bounds how stale a cached hardware may be: a changed MAC is
// seen by the engine within this time.
const hardwareTTL = 2 * time.Second

// New returns an Engine; it does no I/O until Run (or the first call).
func New(cfg Config) *Engine {
	e := &Engine{store: cfg.Store, loader: cfg.Loader, log: cfg.Log, now: cfg.Now, tick: cfg.Tick, prep: cfg.Preparer, obs: cfg.Observer, leader: cfg.Leader,
		runs: map[state.RunKey]*state.WorkflowRun{}, locks: map[state.RunKey]*sync.Mutex{}, waiters: map[string][]chan struct{}{},
		byWorker:  map[string]map[state.RunKey]bool{},
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
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		e.watchPending(ctx)
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

// load reads the runs that have not ended from the store (once).
func (e *Engine) load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded {
		return nil
	}
	runs, err := state.AllRuns(ctx, e.store, state.RunQuery{States: []state.RunState{state.RunPending, state.RunPreparing, state.RunRunning}})
	if err != nil {
		return fmt.Errorf("read active runs: %w", err)
	}
	for _, r := range runs {
		e.setRunLocked(r.Key(), r)
	}
	e.loaded = true
	return nil
}

// setRunLocked records the current version of an active run (nil: it
// ended) and keeps byWorker in step. The caller holds e.mu.
func (e *Engine) setRunLocked(key state.RunKey, r *state.WorkflowRun) {
	if old, ok := e.runs[key]; ok {
		if w := currentWorker(old); w != "" {
			delete(e.byWorker[w], key)
			if len(e.byWorker[w]) == 0 {
				delete(e.byWorker, w)
			}
		}
	}
	if r == nil {
		delete(e.runs, key)
		return
	}
	e.runs[key] = r
	if w := currentWorker(r); w != "" {
		if e.byWorker[w] == nil {
			e.byWorker[w] = map[state.RunKey]bool{}
		}
		e.byWorker[w][key] = true
	}
}

// currentWorker is the worker a RUNNING run waits on, or "".
func currentWorker(r *state.WorkflowRun) string {
	if r.State != state.RunRunning || r.CurrentAction >= len(r.Actions) {
		return ""
	}
	return r.Actions[r.CurrentAction].Worker
}

// runsFor returns the RUNNING runs whose current action belongs to one of
// a machine's worker names, oldest first.
func (e *Engine) runsFor(names []string) []*state.WorkflowRun {
	e.mu.Lock()
	var out []*state.WorkflowRun
	seen := map[state.RunKey]bool{}
	for _, n := range names {
		for k := range e.byWorker[n] {
			if !seen[k] {
				seen[k] = true
				out = append(out, e.runs[k])
			}
		}
	}
	e.mu.Unlock()
	sortRuns(out)
	return out
}

// sortRuns orders runs oldest first, then by key.
func sortRuns(runs []*state.WorkflowRun) {
	sort.Slice(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Workflow != b.Workflow {
			return a.Workflow < b.Workflow
		}
		return a.Number < b.Number
	})
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
	now := e.now()
	for _, r := range e.active() {
		if r.State == state.RunPreparing {
			e.prepare(ctx, r.Key())
			continue
		}
		if r.State != state.RunRunning {
			continue
		}
		key := r.Key()
		switch {
		case !r.Deadline.IsZero() && now.After(r.Deadline):
			ended := -1 // the action whose attempt the timeout ends
			run, err := e.transitionRun(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
				if r.State != state.RunRunning || r.Deadline.IsZero() || !e.now().After(r.Deadline) {
					return false, nil
				}
				if i := r.CurrentAction; i < len(r.Actions) && r.Actions[i].State == state.RunRunning {
					a := &r.Actions[i]
					a.State, a.FinishedAt, a.Message = state.RunTimeout, e.now(), "the run's global timeout passed"
					ended = i
				}
				finish(r, state.RunTimeout, fmt.Sprintf("global timeout of %ds passed", r.GlobalTimeout), e.now())
				return true, nil
			})
			if err == nil && ended >= 0 {
				e.actionEnded(run, ended, state.RunTimeout)
			}
		case r.CurrentAction < len(r.Actions):
			a := r.Actions[r.CurrentAction]
			if a.State == state.RunRunning && !a.Deadline.IsZero() && now.After(a.Deadline) {
				idx, attempt := r.CurrentAction, a.Attempt
				ended := false
				run, err := e.transitionRun(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
					if r.State != state.RunRunning || r.CurrentAction != idx || r.Actions[idx].Attempt != attempt || r.Actions[idx].State != state.RunRunning {
						return false, nil
					}
					e.endAttempt(r, state.RunTimeout, fmt.Sprintf("no report within the action's timeout of %ds", r.Actions[idx].Timeout))
					ended = true
					return true, nil
				})
				if err == nil && ended {
					e.actionEnded(run, idx, state.RunTimeout)
				}
			}
		}
	}
	e.startWaiting(ctx)
}

// prepare runs a PREPARING run's boot actions in a goroutine the engine
// owns (BMC calls take seconds; other runs go on meanwhile), then moves the
// run to RUNNING, or FAILED with the BMC's error.
func (e *Engine) prepare(ctx context.Context, key state.RunKey) {
	e.mu.Lock()
	if e.preparing[key] || e.prep == nil {
		e.mu.Unlock()
		return
	}
	e.preparing[key] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.preparing, key)
			e.mu.Unlock()
		}()
		run, err := e.store.GetRun(ctx, key)
		if err != nil {
			e.log.Error("prepare: read run", append(keyAttrs(key), "err", err)...)
			return
		}
		wf, _, hw, err := e.inputs(ctx, run)
		if err == nil {
			err = e.prep.Prepare(ctx, run, wf, hw)
		}
		if ctx.Err() != nil {
			return // shutting down: the next engine prepares again
		}
		_ = e.transition(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
			if r.State != state.RunPreparing {
				return false, nil
			}
			if err != nil {
				finish(r, state.RunFailed, "boot actions failed: "+bmcMessage(err), e.now())
				return true, nil
			}
			r.State, r.Reason = state.RunRunning, "boot actions done"
			return true, nil
		})
	}()
}

// watchPending follows the event log for runs written PENDING (by the
// reconciler or the API), so Step reads waiting runs only when there are
// new ones rather than scanning the whole run history every tick.
func (e *Engine) watchPending(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := e.store.Watch(ctx, 0, state.EventFilter{Kind: state.KindWorkflow, Types: []state.EventType{state.EventRunState}})
		if err != nil {
			e.log.Warn("watch runs", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.Events() {
			if ev.State == state.RunPending {
				e.mu.Lock()
				e.pendingDirty = true
				e.mu.Unlock()
			}
		}
		w.Close()
		// The watch ended (fell behind, store closing): read everything
		// once more.
		e.mu.Lock()
		e.pendingDirty = true
		e.mu.Unlock()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// pendingSafety is how often waiting runs are read even without news.
const pendingSafety = 30 * time.Second

// refreshPending picks up runs the reconciler or the API created: when the
// event log said there are new ones, and every pendingSafety anyway.
func (e *Engine) refreshPending(ctx context.Context) error {
	e.mu.Lock()
	if !e.pendingDirty && time.Since(e.pendingRead) < pendingSafety {
		e.mu.Unlock()
		return nil
	}
	e.pendingRead, e.pendingDirty = time.Now(), false
	e.mu.Unlock()
	runs, err := state.AllRuns(ctx, e.store, state.RunQuery{States: []state.RunState{state.RunPending}})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range runs {
		if _, ok := e.runs[r.Key()]; !ok {
			e.setRunLocked(r.Key(), r)
		}
	}
	return nil
}

// active returns the runs that have not ended, oldest first.
func (e *Engine) active() []*state.WorkflowRun {
	e.mu.Lock()
	out := slices.Collect(maps.Values(e.runs))
	e.mu.Unlock()
	sortRuns(out)
	return out
}

func hwKey(namespace, hardware string) string { return namespace + "/" + hardware }

// machineName is how a run names another machine it holds (Machines):
// "name", or "namespace/name".
func machineName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// machinesOf returns the keys (hwKey) of every machine a run holds: its
// hardware, and the machines its other tasks run on.
func machinesOf(r *state.WorkflowRun) []string {
	out := make([]string, 0, 1+len(r.Machines))
	out = append(out, hwKey(r.Namespace, r.Hardware))
	for _, m := range r.Machines {
		ns, name, ok := strings.Cut(m, "/")
		if !ok {
			ns, name = "", m
		}
		out = append(out, hwKey(ns, name))
	}
	return out
}

// holder is the run that holds a machine, and that machine's name.
type holder struct {
	run     *state.WorkflowRun
	machine string
}

// heldBy returns who holds one of r's machines other than r itself, if
// anyone does.
func heldBy(busy map[string]holder, r *state.WorkflowRun) (holder, bool) {
	for _, hk := range machinesOf(r) {
		if h, ok := busy[hk]; ok && h.run.Key() != r.Key() {
			return h, true
		}
	}
	return holder{}, false
}

// hold marks every machine of r as held by r.
func hold(busy map[string]holder, r *state.WorkflowRun) {
	for _, hk := range machinesOf(r) {
		_, name, _ := strings.Cut(hk, "/")
		busy[hk] = holder{run: r, machine: name}
	}
}

// waitReason says what a waiting run waits for.
func waitReason(h holder) string {
	return fmt.Sprintf("waits for %s#%d, %s on %s", h.run.Workflow, h.run.Number, h.run.State, h.machine)
}

// startWaiting starts, for each machine without a run in progress, its
// oldest waiting run: one run per machine at a time, in creation order. A
// run holds its hardware and every other machine its tasks run on; a
// waiting run keeps its place in the queue of each of its machines, so a
// younger run cannot overtake it there.
func (e *Engine) startWaiting(ctx context.Context) {
	busy := map[string]holder{}
	runs := e.active()
	for _, r := range runs {
		if r.State == state.RunPreparing || r.State == state.RunRunning {
			hold(busy, r)
		}
	}
	for _, r := range runs {
		if r.State != state.RunPending {
			continue
		}
		if h, ok := heldBy(busy, r); ok {
			e.noteWaiting(ctx, r, waitReason(h))
			hold(busy, r)
			continue
		}
		if err := e.start(ctx, r.Key(), busy); err != nil {
			e.log.Error("start run", append(runAttrs(r), "err", err)...)
		}
		e.mu.Lock()
		started := e.runs[r.Key()]
		e.mu.Unlock()
		if started == nil {
			continue // it ended at once (its template did not render)
		}
		hold(busy, started)
	}
}

// noteWaiting records what a waiting run waits for, once: status shows it.
func (e *Engine) noteWaiting(ctx context.Context, r *state.WorkflowRun, reason string) {
	if r.Reason == reason {
		return
	}
	if err := e.transition(ctx, r.Key(), state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
		if r.State != state.RunPending || r.Reason == reason {
			return false, nil
		}
		r.Reason = reason
		return true, nil
	}); err != nil {
		e.log.Error("note waiting run", append(runAttrs(r), "err", err)...)
	}
}

// start hands a waiting run to PREPARING or RUNNING. A new run renders its
// template (a template that does not render fails the run, with why) and
// finds the machines its tasks run on; if one of them is held by another
// run, it keeps waiting. A retried run keeps its rendering (see resume).
func (e *Engine) start(ctx context.Context, key state.RunKey, busy map[string]holder) error {
	return e.transition(ctx, key, state.ActorReconciler, func(r *state.WorkflowRun) (bool, error) {
		if r.State != state.RunPending {
			return false, nil
		}
		wf, t, hw, err := e.inputs(ctx, r)
		now := e.now()
		if err != nil {
			finish(r, state.RunFailed, err.Error(), now)
			return true, nil
		}
		if len(r.Actions) > 0 {
			e.resume(r, wf, hw, now)
			return true, nil
		}
		doc, errs := e.loader.Render(t, wf, hw, e.knownMAC(ctx))
		if len(errs) > 0 {
			msg := errs[0].Error()
			if len(errs) > 1 {
				msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
			}
			finish(r, state.RunFailed, "template did not render: "+msg, now)
			return true, nil
		}
		machines, err := e.machinesFor(ctx, doc, hw)
		if err != nil {
			finish(r, state.RunFailed, err.Error(), now)
			return true, nil
		}
		r.Template, r.Hardware, r.Machines = wf.Spec.TemplateRef, wf.Spec.HardwareRef, machines
		if h, ok := heldBy(busy, r); ok {
			// Another machine of the template is busy: wait for it, and
			// render again when the run starts.
			r.Reason = waitReason(h)
			return true, nil
		}
		r.Actions = flatten(doc)
		r.CurrentAction = 0
		r.GlobalTimeout = doc.GlobalTimeout
		r.StartedAt = now
		if doc.GlobalTimeout > 0 {
			r.Deadline = now.Add(time.Duration(doc.GlobalTimeout) * time.Second)
		}
		if b := wf.Spec.BootOptions; b != nil && b.ToggleAllowNetboot {
			r.AllowPXE = new(true)
		}
		r.State, r.Reason = state.RunRunning, fmt.Sprintf("started: template %s rendered for %s, %d actions", t.Metadata.Name, hw.Metadata.Name, len(r.Actions))
		if len(machines) > 0 {
			r.Reason += fmt.Sprintf(", tasks also on %s", strings.Join(machines, ", "))
		}
		if len(r.Actions) == 0 {
			finish(r, state.RunSuccess, "the template has no actions", now)
		}
		if e.prep != nil && needsBoot(wf) && r.State == state.RunRunning {
			r.State, r.Reason = state.RunPreparing, "preparing: BMC boot actions"
		}
		return true, nil
	})
}

// resume starts a retried run again with the rendering it has, from its
// current action. Its machine is prepared again (PREPARING: the boot
// actions of its bootOptions) when the run starts over, from the start or
// before any action was handed out (its boot actions failed, or it ended
// before its worker asked for work): the machine must boot what the
// run's first action expects. A run retried from a later action resumes
// on the machine as it is.
func (e *Engine) resume(r *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware, now time.Time) {
	r.Deadline = time.Time{}
	if r.GlobalTimeout > 0 {
		r.Deadline = now.Add(time.Duration(r.GlobalTimeout) * time.Second)
	}
	if b := wf.Spec.BootOptions; b != nil && b.ToggleAllowNetboot {
		r.AllowPXE = new(true)
	}
	from := r.Actions[r.CurrentAction].Name
	r.State, r.Reason = state.RunRunning, fmt.Sprintf("retry: resumed from action %s", from)
	if !needsBoot(wf) || e.prep == nil {
		return
	}
	if startsOver(r) {
		r.State, r.Reason = state.RunPreparing, fmt.Sprintf("retry: preparing %s again: BMC boot actions (the run starts over)", hw.Metadata.Name)
		return
	}
	r.Reason += fmt.Sprintf("; %s is not prepared again (the run was past its boot actions)", hw.Metadata.Name)
}

// startsOver reports whether a run resumes before any of its actions was
// handed out: retried from the start (attempts are counted afresh), or
// after it failed before its first action.
func startsOver(r *state.WorkflowRun) bool {
	for _, a := range r.Actions {
		if a.Attempt > 0 {
			return false
		}
	}
	return true
}

// machinesFor names the machines other than hw that a rendered template's
// tasks run on (a task's worker is a MAC or a hardware name).
func (e *Engine) machinesFor(ctx context.Context, doc *schema.TemplateDocument, hw *schema.Hardware) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range doc.Tasks {
		if seen[t.Worker] || worksFor(hw.Metadata.Namespace, t.Worker, hw) {
			continue
		}
		seen[t.Worker] = true
		other, err := e.hardwareFor(ctx, t.Worker)
		if err != nil {
			return nil, fmt.Errorf("task %s: worker %s: %s", t.Name, t.Worker, state.ErrorMessage(err))
		}
		if n := machineName(other.Metadata.Namespace, other.Metadata.Name); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// bmcMessage is a boot action error as the run's reason shows it: a coded
// error's message (without its code), any other error's text; the
// Preparer keeps secrets out of both.
func bmcMessage(err error) string {
	var se *state.Error
	if errors.As(err, &se) {
		return se.Message
	}
	return err.Error()
}

func needsBoot(wf *schema.Workflow) bool {
	b := wf.Spec.BootOptions
	return b != nil && (b.BootMode != "" || b.ToggleAllowNetboot)
}

// inputs reads the run's workflow, template and hardware from the store.
func (e *Engine) inputs(ctx context.Context, r *state.WorkflowRun) (*schema.Workflow, *schema.Template, *schema.Hardware, error) {
	get := func(kind, name string) (schema.Object, error) {
		o, err := e.store.GetObject(ctx, state.ObjectKey{Kind: kind, Namespace: r.Namespace, Name: name})
		if err != nil {
			return nil, fmt.Errorf("%s %s: %s", strings.ToLower(kind), name, state.ErrorMessage(err))
		}
		return reconciler.FromState(o)
	}
	wo, err := get(state.KindWorkflow, r.Workflow)
	if err != nil {
		return nil, nil, nil, err
	}
	wf := wo.(*schema.Workflow)
	to, err := get(state.KindTemplate, wf.Spec.TemplateRef)
	if err != nil {
		return nil, nil, nil, err
	}
	ho, err := get(state.KindHardware, wf.Spec.HardwareRef)
	if err != nil {
		return nil, nil, nil, err
	}
	return wf, to.(*schema.Template), ho.(*schema.Hardware), nil
}

// knownMAC reports whether a MAC belongs to any stored hardware.
func (e *Engine) knownMAC(ctx context.Context) func(string) bool {
	return func(mac string) bool {
		_, err := e.hardwareFor(ctx, mac)
		return err == nil
	}
}

// flatten lists a rendered document's actions in execution order, with
// the task's environment under the action's and the task's volumes before
// the action's, as Tinkerbell runs them.
func flatten(doc *schema.TemplateDocument) []state.RunAction {
	var out []state.RunAction
	for _, t := range doc.Tasks {
		for _, a := range t.Actions {
			env := map[string]string{}
			maps.Copy(env, t.Environment)
			maps.Copy(env, a.Environment)
			if len(env) == 0 {
				env = nil
			}
			pid := a.Pid
			if a.Namespaces != nil && a.Namespaces.PID != "" {
				pid = a.Namespaces.PID
			}
			out = append(out, state.RunAction{
				Task: t.Name, Name: a.Name, Image: a.Image, Timeout: a.Timeout, Command: a.Command,
				Environment: env, Volumes: append(slices.Clone(t.Volumes), a.Volumes...), Pid: pid,
				Retries: a.Retries, Background: a.Background, Worker: t.Worker, State: state.RunPending,
			})
		}
	}
	return out
}

// finish ends a run.
func finish(r *state.WorkflowRun, s state.RunState, reason string, now time.Time) {
	r.State, r.Reason, r.FinishedAt = s, reason, now
}

// endAttempt ends the current action's attempt as FAILED or TIMEOUT: the
// action is tried again while it has retries left, else the run ends.
func (e *Engine) endAttempt(r *state.WorkflowRun, s state.RunState, msg string) {
	now := e.now()
	a := &r.Actions[r.CurrentAction]
	a.FinishedAt, a.Message = now, msg
	if a.Attempt <= a.Retries {
		a.State, a.Deadline = state.RunPending, time.Time{}
		r.Reason = fmt.Sprintf("action %s attempt %d %s; retrying (%d of %d retries left)", a.Name, a.Attempt, strings.ToLower(string(s)), a.Retries-a.Attempt+1, a.Retries)
		return
	}
	a.State = s
	finish(r, s, fmt.Sprintf("action %s %s after %d attempt(s): %s", a.Name, strings.ToLower(string(s)), a.Attempt, msg), now)
}

// actionEnded tells the observer that the attempt of action i of run, as
// written, ended with result.
func (e *Engine) actionEnded(run *state.WorkflowRun, i int, result state.RunState) {
	if e.obs == nil || run == nil || i < 0 || i >= len(run.Actions) {
		return
	}
	a := &run.Actions[i]
	e.obs.ActionEnded(run.Template, a.Name, result, max(a.FinishedAt.Sub(a.StartedAt), 0))
}

// lock returns the writer lock of one run.
func (e *Engine) lock(key state.RunKey) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.locks[key]
	if !ok {
		l = &sync.Mutex{}
		e.locks[key] = l
	}
	return l
}

// transition applies change to the current version of a run and writes it
// durably. change returns false to write nothing. Runs of different
// machines change concurrently; one run changes one at a time.
func (e *Engine) transition(ctx context.Context, key state.RunKey, actor state.Actor, change func(r *state.WorkflowRun) (bool, error)) error {
	_, err := e.transitionRun(ctx, key, actor, change)
	return err
}

// transitionOnce is transition returning the run as it now is, without
// the retry on a conflict that transitionRun adds.
func (e *Engine) transitionOnce(ctx context.Context, key state.RunKey, actor state.Actor, change func(r *state.WorkflowRun) (bool, error)) (*state.WorkflowRun, error) {
	l := e.lock(key)
	l.Lock()
	defer l.Unlock()
	e.mu.Lock()
	cur, ok := e.runs[key]
	e.mu.Unlock()
	if !ok {
		r, err := e.store.GetRun(ctx, key)
		if err != nil {
			return nil, err
		}
		cur = r
	}
	next := cloneRun(cur)
	write, err := change(next)
	if err != nil {
		return nil, err
	}
	if !write {
		return cur, nil
	}
	if next.State == state.RunSuccess && next.AllowPXE != nil && *next.AllowPXE {
		// toggleAllowNetboot: a machine that installed must not install
		// again on its next boot.
		next.AllowPXE = new(false)
		next.Reason += "; PXE no longer allowed"
	}
	written, err := e.store.PutRun(ctx, actor, next)
	if err != nil {
		if state.ErrorCode(err) == state.ECONFLICT {
			// Someone else wrote the run (an API retry, a second engine):
			// read it again next time.
			e.mu.Lock()
			e.setRunLocked(key, nil)
			e.mu.Unlock()
		}
		return nil, err
	}
	e.mu.Lock()
	if written.State.Terminal() {
		e.setRunLocked(key, nil)
		delete(e.locks, key)
	} else {
		e.setRunLocked(key, written)
	}
	e.mu.Unlock()
	e.notify(hwKey(written.Namespace, written.Hardware))
	e.logTransition(cur, written, actor)
	if written.State.Terminal() && !cur.State.Terminal() {
		e.finishIfLeader(written.Key())
	}
	return written, nil
}

// runAttrs are the log attributes of a line about run r: workflow, run,
// hardware and action (the current one, or the last once all are done),
// with the namespace when there is one.
func runAttrs(r *state.WorkflowRun) []any {
	action := ""
	if i := r.CurrentAction; i < len(r.Actions) {
		action = r.Actions[i].Name
	} else if n := len(r.Actions); n > 0 {
		action = r.Actions[n-1].Name
	}
	attrs := []any{"workflow", r.Workflow, "run", r.Number, "hardware", r.Hardware, "action", action}
	if r.Namespace != "" {
		attrs = append(attrs, "namespace", r.Namespace)
	}
	return attrs
}

// keyAttrs are the attributes of a line about a run known only by its key.
func keyAttrs(k state.RunKey) []any {
	attrs := []any{"workflow", k.Workflow, "run", k.Number}
	if k.Namespace != "" {
		attrs = append(attrs, "namespace", k.Namespace)
	}
	return attrs
}

// logTransition writes one line per change of a run's state (info) or of
// its current action's state (debug), each carrying workflow, run,
// hardware and action, so an operator can follow one run through the log
// with a single filter.
func (e *Engine) logTransition(before, after *state.WorkflowRun, actor state.Actor) {
	switch {
	case before.State != after.State:
		e.log.Info("run "+strings.ToLower(string(after.State)), append(runAttrs(after), "from", string(before.State), "reason", after.Reason, "actor", string(actor))...)
	case e.log.Enabled(context.Background(), slog.LevelDebug):
		// Only here is the action's state worth working out: this runs on
		// every transition, thousands a second, mostly not logged.
		actionState := state.RunState("")
		if i := after.CurrentAction; i < len(after.Actions) {
			actionState = after.Actions[i].State
		} else if n := len(after.Actions); n > 0 {
			actionState = after.Actions[n-1].State
		}
		prev := state.RunState("")
		if i := after.CurrentAction; i < len(before.Actions) && before.CurrentAction == i {
			prev = before.Actions[i].State
		}
		if prev != actionState || before.CurrentAction != after.CurrentAction {
			e.log.Debug("action "+strings.ToLower(string(actionState)), append(runAttrs(after), "reason", after.Reason, "actor", string(actor))...)
		}
	}
}

// finish runs the after-run boot actions of an ended run in a goroutine the
// engine owns; a failure is logged and an event (it does not change how
// the run ended).
func (e *Engine) finish(key state.RunKey) {
	e.mu.Lock()
	base := e.runCtx
	e.mu.Unlock()
	e.finishIn(base, key)
}

// finishIn is finish with the context the boot actions run under (the
// leader's term on a replica, see replicas.go).
func (e *Engine) finishIn(base context.Context, key state.RunKey) {
	f, ok := e.prep.(Finisher)
	if !ok {
		return
	}
	if base == nil || base.Err() != nil {
		return // not running (or stopping): nothing owns the goroutine
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(base, finishTimeout)
		defer cancel()
		run, err := e.store.GetRun(ctx, key)
		if err != nil {
			e.log.Error("after-run boot actions: read run", append(keyAttrs(key), "err", err)...)
			return
		}
		wf, _, hw, err := e.inputs(ctx, run)
		if err != nil {
			e.log.Warn("after-run boot actions skipped", append(runAttrs(run), "err", err)...)
			return
		}
		if !needsBoot(wf) {
			return
		}
		if err := f.Finish(ctx, run, wf, hw); err != nil {
			e.log.Warn("after-run boot actions failed", append(runAttrs(run), "err", err)...)
		}
	}()
}

func cloneRun(r *state.WorkflowRun) *state.WorkflowRun {
	c := *r
	c.Actions = slices.Clone(r.Actions)
	c.Machines = slices.Clone(r.Machines)
	return &c
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
