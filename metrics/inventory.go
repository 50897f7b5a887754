package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// inventory counts the store's objects by kind and source and its runs by
// state, for tink_objects and tink_workflow_runs.
//
// Counting at scrape time would read and decode every object (20,000 in a
// large fleet: tens of milliseconds) and every run ever started (a history
// that only grows) on every scrape. The reconciler's mirror of the objects
// (reconciler/mirror.go) would be cheap to count, but it is brought up to
// date only before a plan, so between syncs it misses API writes, and it
// holds no runs. The event log names every change in commit order, without
// gaps: after one full listing, Run applies each object and run-state event
// as it is written, a map update per change (plus a read of the object for
// an API write, whose source the event does not tell), and a scrape copies
// a few counters. The price is memory for the keys of every object and run
// (about 100 bytes each).
type inventory struct {
	store               state.Store
	log                 *slog.Logger
	objectDesc, runDesc *prometheus.Desc

	mu      sync.Mutex
	loaded  bool
	objects map[state.ObjectKey]state.Source
	byKind  map[kindSource]int
	runs    map[state.RunKey]state.RunState
	byState map[state.RunState]int
}

// kindSource is a label pair of tink_objects.
type kindSource struct {
	kind   string
	source state.Source
}

// runStates are the states tink_workflow_runs always shows, 0 included.
func runStates() []state.RunState {
	return []state.RunState{state.RunPending, state.RunPreparing, state.RunRunning, state.RunSuccess, state.RunFailed, state.RunTimeout, state.RunCancelled}
}

func newInventory(store state.Store, log *slog.Logger) *inventory {
	return &inventory{
		store: store,
		log:   log,
		objectDesc: prometheus.NewDesc("tink_objects",
			"Objects in the store by kind and source: git (declared in the repository) or api (created through the API).", []string{"kind", "source"}, nil),
		runDesc: prometheus.NewDesc("tink_workflow_runs",
			"Workflow runs in the store by state.", []string{"state"}, nil),
	}
}

// Run lists the store once, then follows its event log until ctx ends. If
// following fails (retention removed events it had not read yet, a read
// failed), it lists the store again.
func (inv *inventory) Run(ctx context.Context) error {
	for {
		err := inv.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		inv.log.Warn("metrics: lost the event log; counting objects and runs again", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// follow loads the counts and applies events until the watch ends.
func (inv *inventory) follow(ctx context.Context) error {
	latest, err := inv.load(ctx)
	if err != nil {
		return err
	}
	// From the event after the bounds read before listing: a change the
	// listing shows already is applied twice, which is harmless.
	w, err := inv.store.Watch(ctx, latest+1, state.EventFilter{Types: []state.EventType{
		state.EventCreated, state.EventUpdated, state.EventDeleted, state.EventRunState}})
	if err != nil {
		return fmt.Errorf("watch events after %d: %w", latest, err)
	}
	defer w.Close()
	for ev := range w.Events() {
		if err := inv.apply(ctx, ev); err != nil {
			return err
		}
	}
	return w.Err()
}

// load lists every object and run and replaces the counts. It returns the
// latest event sequence number read before listing: the listing shows at
// least the changes up to it.
func (inv *inventory) load(ctx context.Context) (uint64, error) {
	bounds, err := inv.store.EventBounds(ctx)
	if err != nil {
		return 0, fmt.Errorf("read event bounds: %w", err)
	}
	objects := map[state.ObjectKey]state.Source{}
	byKind := map[kindSource]int{}
	for _, k := range []string{state.KindHardware, state.KindTemplate, state.KindWorkflow, state.KindMachine} {
		byKind[kindSource{k, state.SourceGit}] = 0
		byKind[kindSource{k, state.SourceAPI}] = 0
	}
	oq := state.ObjectQuery{Limit: 5000}
	for {
		page, err := inv.store.ListObjects(ctx, oq)
		if err != nil {
			return 0, fmt.Errorf("list objects: %w", err)
		}
		for _, o := range page.Objects {
			objects[o.Key()] = o.Source
			byKind[kindSource{o.Kind, o.Source}]++
		}
		if oq.Continue = page.Continue; oq.Continue == "" {
			break
		}
	}
	runs := map[state.RunKey]state.RunState{}
	byState := map[state.RunState]int{}
	rq := state.RunQuery{Limit: 5000}
	for {
		page, err := inv.store.ListRuns(ctx, rq)
		if err != nil {
			return 0, fmt.Errorf("list runs: %w", err)
		}
		for _, r := range page.Runs {
			runs[r.Key()] = r.State
			byState[r.State]++
		}
		if rq.Continue = page.Continue; rq.Continue == "" {
			break
		}
	}
	inv.mu.Lock()
	inv.objects, inv.byKind, inv.runs, inv.byState, inv.loaded = objects, byKind, runs, byState, true
	inv.mu.Unlock()
	return bounds.Latest, nil
}

// apply brings the counts up to date with one event. Events may be
// applied late or twice: a run-state event carries the run's state after
// the change, and an object's source is read as it is now, so the counts
// are right once the events up to now are applied.
func (inv *inventory) apply(ctx context.Context, ev state.Event) error {
	switch ev.Type {
	case state.EventRunState:
		if ev.Run > 0 && ev.State.Valid() {
			inv.setRun(state.RunKey{Namespace: ev.Namespace, Workflow: ev.Name, Number: ev.Run}, ev.State)
		}
		return nil
	case state.EventCreated, state.EventUpdated, state.EventDeleted:
	default:
		return nil
	}
	key := state.ObjectKey{Kind: ev.Kind, Namespace: ev.Namespace, Name: ev.Name}
	switch {
	case ev.Type == state.EventDeleted:
		inv.setObject(key, "")
	case ev.Actor == state.ActorGit:
		// Only the reconciler writes as git, and only the objects the
		// repository declares (reconciler/apply.go): no read needed for
		// the thousands of changes of a large commit.
		inv.setObject(key, state.SourceGit)
	default:
		o, err := inv.store.GetObject(ctx, key)
		switch {
		case state.ErrorCode(err) == state.ENOTFOUND:
			inv.setObject(key, "") // deleted since; its event follows
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			inv.setObject(key, o.Source)
		}
	}
	return nil
}

// setObject records an object's source; "" removes it.
func (inv *inventory) setObject(key state.ObjectKey, src state.Source) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	old, ok := inv.objects[key]
	if ok && old == src {
		return
	}
	if ok {
		inv.byKind[kindSource{key.Kind, old}]--
	}
	if src == "" {
		delete(inv.objects, key)
		return
	}
	inv.objects[key] = src
	inv.byKind[kindSource{key.Kind, src}]++
}

// setRun records a run's state.
func (inv *inventory) setRun(key state.RunKey, s state.RunState) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	old, ok := inv.runs[key]
	if ok && old == s {
		return
	}
	if ok {
		inv.byState[old]--
	}
	inv.runs[key] = s
	inv.byState[s]++
}

// hardwareMayExist reports for each hardware whether it is in the store,
// or may be: before the first listing nothing is known.
func (inv *inventory) hardwareMayExist(hws []schema.Key) []bool {
	out := make([]bool, len(hws))
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for i, hw := range hws {
		_, ok := inv.objects[state.ObjectKey{Kind: state.KindHardware, Namespace: hw.Namespace, Name: hw.Name}]
		out[i] = ok || !inv.loaded
	}
	return out
}

// Describe implements prometheus.Collector.
func (inv *inventory) Describe(ch chan<- *prometheus.Desc) {
	ch <- inv.objectDesc
	ch <- inv.runDesc
}

// Collect implements prometheus.Collector. Until the first listing is
// done it exports nothing: no value beats a wrong one.
func (inv *inventory) Collect(ch chan<- prometheus.Metric) {
	inv.mu.Lock()
	if !inv.loaded {
		inv.mu.Unlock()
		return
	}
	byKind := maps.Clone(inv.byKind)
	states := runStates()
	byState := make([]int, len(states))
	for i, s := range states {
		byState[i] = inv.byState[s]
	}
	inv.mu.Unlock()
	for k, n := range byKind {
		ch <- prometheus.MustNewConstMetric(inv.objectDesc, prometheus.GaugeValue, float64(n), k.kind, string(k.source))
	}
	for i, s := range states {
		ch <- prometheus.MustNewConstMetric(inv.runDesc, prometheus.GaugeValue, float64(byState[i]), string(s))
	}
}
