package workflow

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// cachedHardware is a hardware read at a time, when hwGen was gen.
type cachedHardware struct {
	hw   *schema.Hardware
	read time.Time
	gen  uint64
}

// hardwareTTL bounds how stale a cached hardware may be while the
// hardware's events are not followed (before Run, or between watches): a
// changed MAC is seen by the engine within this time.
const hardwareTTL = 2 * time.Second

// freshLocked reports whether a cached hardware may still be used: while
// the events are followed, if no hardware changed since it was read;
// otherwise if it is younger than hwTTL. The caller holds e.macMu.
func (e *Engine) freshLocked(c cachedHardware) bool {
	if e.hwWatched {
		return c.gen == e.hwGen
	}
	return time.Since(c.read) < e.hwTTL
}

// watchHardware follows the hardware's events: a hardware created,
// changed or deleted drops the cached hardware (which is keyed by names
// and MACs, any of which may have changed), so a worker request need not
// read its machine again every hardwareTTL.
func (e *Engine) watchHardware(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := e.store.Watch(ctx, 0, state.EventFilter{Kind: state.KindHardware})
		if err != nil {
			e.log.Warn("watch hardware", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		e.macMu.Lock()
		e.hwGen++ // what was read before the watch began is not trusted
		e.hwWatched = true
		e.macMu.Unlock()
		for range w.Events() {
			e.macMu.Lock()
			e.hwGen++
			e.macMu.Unlock()
		}
		w.Close()
		e.macMu.Lock()
		e.hwWatched = false // the watch ended: back to hwTTL
		e.macMu.Unlock()
	}
}

// load reads the runs that have not ended from the store (once).
func (e *Engine) load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded {
		return nil
	}
	// The event log's position before the runs are read: a watch of
	// followRuns that starts after this read starts there (see
	// followRuns), so a run another replica writes in between is not
	// missed.
	b, err := e.store.EventBounds(ctx)
	if err != nil {
		return fmt.Errorf("read active runs: %w", err)
	}
	runs, err := state.AllRuns(ctx, e.store, state.RunQuery{States: []state.RunState{state.RunPending, state.RunPreparing, state.RunRunning}})
	if err != nil {
		return fmt.Errorf("read active runs: %w", err)
	}
	for _, r := range runs {
		e.setRunLocked(r.Key(), r)
	}
	e.loaded, e.loadedAt = true, b.Latest
	return nil
}

// setRunLocked records the current version of an active run (nil: it
// ended) and keeps byWorker in step. The caller holds e.mu.
func (e *Engine) setRunLocked(key state.RunKey, r *state.WorkflowRun) {
	e.runsGen++ // the sorted list active returns is out of date
	if old, ok := e.runs[key]; ok && r != nil && currentWorker(old) == currentWorker(r) {
		e.runs[key] = r // the same worker's: byWorker stays as it is
		return
	}
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
//
// The list is kept between calls until a run changes: every tick walks it
// twice, and sorting 10,000 runs that wait for their workers ten times a
// second was most of an idle server's CPU (100,000 kept a core busy).
// Callers only read it.
func (e *Engine) active() []*state.WorkflowRun {
	out, _ := e.activeGen()
	return out
}

// activeGen is active with the change (runsGen) the list is as of.
func (e *Engine) activeGen() ([]*state.WorkflowRun, uint64) {
	e.mu.Lock()
	if e.sorted != nil && e.sortedGen == e.runsGen {
		out, gen := e.sorted, e.sortedGen
		e.mu.Unlock()
		return out, gen
	}
	gen := e.runsGen
	out := slices.Collect(maps.Values(e.runs))
	e.mu.Unlock()
	sortRuns(out)
	e.mu.Lock()
	if e.runsGen == gen {
		e.sorted, e.sortedGen = out, gen
	}
	e.mu.Unlock()
	return out, gen
}

func hwKey(namespace, hardware string) string { return namespace + "/" + hardware }

// inputs reads the run's workflow, template and hardware from the store.
func (e *Engine) inputs(ctx context.Context, r *state.WorkflowRun) (*schema.Workflow, *schema.Template, *schema.Hardware, error) {
	wf, err := e.workflowOf(ctx, r)
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := e.templateOf(ctx, r, wf.Spec.TemplateRef)
	if err != nil {
		return nil, nil, nil, err
	}
	ho, err := e.runObject(ctx, r, state.KindHardware, wf.Spec.HardwareRef)
	if err != nil {
		return nil, nil, nil, err
	}
	return wf, t, ho.(*schema.Hardware), nil
}

// maxTemplates bounds the parsed templates the engine keeps; beyond it
// the cache starts again (a fleet has tens of templates, not thousands).
const maxTemplates = 1000

// cachedTemplate is a template decoded and parsed at a resource version.
type cachedTemplate struct {
	rv uint64
	t  *schema.Template
}

// templateOf reads a template of the run's namespace. It is read from the
// store each time, so a changed template is seen at once, but decoded and
// parsed only when its resource version changed: a fleet's 10,000 runs
// starting on one template decoded and parsed it 10,000 times, and each
// parse had renderings share no text (schema.Loader.ParseTemplate).
func (e *Engine) templateOf(ctx context.Context, r *state.WorkflowRun, name string) (*schema.Template, error) {
	key := state.ObjectKey{Kind: state.KindTemplate, Namespace: r.Namespace, Name: name}
	o, err := e.store.GetObject(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("template %s: %s", name, state.ErrorMessage(err))
	}
	e.tmplMu.Lock()
	c, ok := e.templates[key]
	e.tmplMu.Unlock()
	if ok && c.rv == o.ResourceVersion {
		return c.t, nil
	}
	so, err := reconciler.FromState(o)
	if err != nil {
		return nil, err
	}
	t := so.(*schema.Template)
	if e.loader.ParseTemplate(t) {
		e.tmplMu.Lock()
		if e.templates == nil || len(e.templates) >= maxTemplates {
			e.templates = map[state.ObjectKey]cachedTemplate{}
		}
		e.templates[key] = cachedTemplate{rv: o.ResourceVersion, t: t}
		e.tmplMu.Unlock()
	}
	return t, nil
}

// workflowOf reads the run's workflow from the store.
func (e *Engine) workflowOf(ctx context.Context, r *state.WorkflowRun) (*schema.Workflow, error) {
	wo, err := e.runObject(ctx, r, state.KindWorkflow, r.Workflow)
	if err != nil {
		return nil, err
	}
	return wo.(*schema.Workflow), nil
}

// runObject reads an object of the run's namespace, with an error that
// names it.
func (e *Engine) runObject(ctx context.Context, r *state.WorkflowRun, kind, name string) (schema.Object, error) {
	o, err := e.store.GetObject(ctx, state.ObjectKey{Kind: kind, Namespace: r.Namespace, Name: name})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %s", strings.ToLower(kind), name, state.ErrorMessage(err))
	}
	return reconciler.FromState(o)
}

// knownMAC reports whether a MAC belongs to any stored hardware. It
// leaves hwCache as it is (see lookupHardware).
func (e *Engine) knownMAC(ctx context.Context) func(string) bool {
	return func(mac string) bool {
		_, err := e.lookupHardware(ctx, mac, false)
		return err == nil
	}
}
