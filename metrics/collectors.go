package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Collectors holds tink-server's collectors and the hooks that feed
// them.
type Collectors struct {
	reconcileTotal    *prometheus.CounterVec
	reconcileDuration *prometheus.HistogramVec
	gitDuration       prometheus.Histogram
	gitFailures       prometheus.Counter
	actionDuration    *prometheus.HistogramVec
	bmcCalls          *prometheus.CounterVec
	bmcDuration       *prometheus.HistogramVec

	applied   *appliedRevision
	inventory *inventory
	workers   workerClock
}

var _ workflow.Observer = (*Collectors)(nil)

// Open registers the server's metrics on reg and returns the hooks the
// server hands to the source, the loop, the BMC controller and the engine.
// It reads the sync status, so the revision in effect shows before the
// first sync; the inventory is kept by Run, which the server starts with
// its other goroutines.
func Open(ctx context.Context, reg *prometheus.Registry, store state.Store, log *slog.Logger) (*Collectors, error) {
	sm, err := New(reg, store, log)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	st, err := store.SyncStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("metrics: read sync status: %w", err)
	}
	sm.applied.seed(st)
	return sm, nil
}

// New registers the metrics on reg, with the Go runtime and process
// collectors (the API adds them only to a registry of its own). It does no
// I/O; Open also reads the revision in effect from the store.
func New(reg *prometheus.Registry, store state.Store, log *slog.Logger) (*Collectors, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sm := &Collectors{
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tink_reconcile_total",
			Help: "Syncs of a revision (load, plan, apply) by result: applied, unchanged, invalid, blocked or failed.",
		}, []string{"result"}),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tink_reconcile_duration_seconds",
			Help:    "How long one sync took, snapshot included, by result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"result"}),
		gitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tink_git_fetch_duration_seconds",
			Help:    "How long one check and fetch of the Git repository, or one read of the watched directory, took.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		gitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tink_git_fetch_failures_total",
			Help: "Checks or fetches of the repository that failed (network, credentials, a missing branch, an unreadable directory).",
		}),
		actionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tink_action_duration_seconds",
			Help:    "How long an attempt of a workflow action ran, by template, action and result (SUCCESS, FAILED, TIMEOUT).",
			Buckets: []float64{.1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"template", "action", "result"}),
		bmcCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tink_bmc_calls_total",
			Help: "BMC operations (power, boot device, virtual media; retries count as one) by action and result (ok, error).",
		}, []string{"action", "result"}),
		bmcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tink_bmc_call_duration_seconds",
			Help:    "How long one BMC operation took, retries and their waits included, by action.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 120},
		}, []string{"action"}),
		applied:   newAppliedRevision(),
		inventory: newInventory(store, log),
	}
	sm.workers.seen = map[schema.Key]*atomic.Int64{}
	// Every label value known in advance starts at zero, so a dashboard
	// shows 0 rather than no data.
	for _, r := range []reconciler.SyncResult{reconciler.SyncApplied, reconciler.SyncUnchanged, reconciler.SyncInvalid, reconciler.SyncBlocked, reconciler.SyncFailed} {
		sm.reconcileTotal.WithLabelValues(string(r))
		sm.reconcileDuration.WithLabelValues(string(r))
	}
	for _, a := range bmcActions() {
		sm.bmcCalls.WithLabelValues(a, "ok")
		sm.bmcCalls.WithLabelValues(a, "error")
		sm.bmcDuration.WithLabelValues(a)
	}
	for _, c := range []prometheus.Collector{
		sm.reconcileTotal, sm.reconcileDuration, sm.gitDuration, sm.gitFailures, sm.actionDuration, sm.bmcCalls, sm.bmcDuration,
		sm.applied, sm.inventory, newWorkersCollector(&sm.workers, sm.inventory), newEventLogCollector(store), newSetCollector(store),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return sm, nil
}

// bmcActions are the action labels bmc.Config.OnCall can report.
func bmcActions() []string {
	var out []string
	for _, a := range bmc.PowerActions() {
		out = append(out, "power "+string(a))
	}
	for _, d := range bmc.BootDevices() {
		out = append(out, "bootdev "+string(d))
	}
	return append(out, "virtual media insert", "virtual media eject")
}

// Run keeps the inventory of objects and runs until ctx ends.
func (sm *Collectors) Run(ctx context.Context) error { return sm.inventory.Run(ctx) }

// Reconciled is reconciler.Loop.OnSync.
func (sm *Collectors) Reconciled(result reconciler.SyncResult, revision string, took time.Duration) {
	sm.reconcileTotal.WithLabelValues(string(result)).Inc()
	sm.reconcileDuration.WithLabelValues(string(result)).Observe(took.Seconds())
	switch result {
	case reconciler.SyncApplied:
		sm.applied.set(revision, time.Now())
	case reconciler.SyncUnchanged:
		sm.applied.set(revision, time.Time{})
	}
}

// GitSynced is gitsource.Config.OnSync.
func (sm *Collectors) GitSynced(took time.Duration, err error) {
	sm.gitDuration.Observe(took.Seconds())
	if err != nil {
		sm.gitFailures.Inc()
	}
}

// BMCCalled is bmc.Config.OnCall.
func (sm *Collectors) BMCCalled(action string, took time.Duration, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	sm.bmcCalls.WithLabelValues(action, result).Inc()
	sm.bmcDuration.WithLabelValues(action).Observe(took.Seconds())
}

// ActionEnded implements workflow.Observer: an action attempt that ended.
func (sm *Collectors) ActionEnded(template, action string, result state.RunState, took time.Duration) {
	sm.actionDuration.WithLabelValues(template, action, string(result)).Observe(took.Seconds())
}

// WorkerSeen implements workflow.Observer: a worker that asked for work or
// reported.
func (sm *Collectors) WorkerSeen(namespace, hardware string, at time.Time) {
	sm.workers.see(schema.Key{Namespace: namespace, Name: hardware}, at)
}

// appliedRevision exports the revision in effect and when it was applied:
// tink_last_applied_revision_info carries only the current revision, and
// neither series exists while it is unknown (0 would read as "applied in
// 1970").
type appliedRevision struct {
	info, time *prometheus.Desc

	mu        sync.Mutex
	revision  string
	appliedAt time.Time
}

func newAppliedRevision() *appliedRevision {
	return &appliedRevision{
		info: prometheus.NewDesc("tink_last_applied_revision_info",
			"The Git revision in effect (value 1).", []string{"revision"}, nil),
		time: prometheus.NewDesc("tink_last_applied_timestamp_seconds",
			"Unix time when a revision was last applied (after a restart, of the last successful sync the store recorded).", nil, nil),
	}
}

// seed starts from the sync status the store keeps. The time of the last
// sync is the time of the last apply only if that sync applied.
func (a *appliedRevision) seed(st *state.SyncStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revision = st.LastAppliedRevision
	if st.LastAppliedRevision != "" && st.LastAttemptedRevision == st.LastAppliedRevision && len(st.Errors) == 0 {
		a.appliedAt = st.LastSyncAt
	}
}

// set records the revision in effect and, unless at is zero, when it was
// applied.
func (a *appliedRevision) set(revision string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revision = revision
	if !at.IsZero() {
		a.appliedAt = at
	}
}

// Describe implements prometheus.Collector.
func (a *appliedRevision) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.info
	ch <- a.time
}

// Collect implements prometheus.Collector.
func (a *appliedRevision) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	rev, at := a.revision, a.appliedAt
	a.mu.Unlock()
	if rev != "" {
		ch <- prometheus.MustNewConstMetric(a.info, prometheus.GaugeValue, 1, rev)
	}
	if !at.IsZero() {
		ch <- prometheus.MustNewConstMetric(a.time, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	}
}

// workerClock remembers when each machine's worker was last seen. Workers
// ask for work every few seconds each, thousands of machines at once: the
// common case is a read lock and an atomic store, with no allocation.
type workerClock struct {
	mu   sync.RWMutex
	seen map[schema.Key]*atomic.Int64 // unix milliseconds
}

// see records hw's worker at at.
func (w *workerClock) see(hw schema.Key, at time.Time) {
	w.mu.RLock()
	v := w.seen[hw]
	w.mu.RUnlock()
	if v == nil {
		w.mu.Lock()
		if v = w.seen[hw]; v == nil {
			v = new(atomic.Int64)
			w.seen[hw] = v
		}
		w.mu.Unlock()
	}
	v.Store(at.UnixMilli())
}

// workersCollector exports tink_worker_last_seen_seconds for the workers
// of hardware that exists: a worker whose hardware was deleted is
// forgotten at the next scrape, so the label set is bounded by the fleet.
type workersCollector struct {
	desc  *prometheus.Desc
	clock *workerClock
	inv   *inventory
}

func newWorkersCollector(clock *workerClock, inv *inventory) *workersCollector {
	return &workersCollector{clock: clock, inv: inv, desc: prometheus.NewDesc("tink_worker_last_seen_seconds",
		"Unix time when the worker of a machine last asked for work or reported; worker is the hardware's name (namespace/name outside the default namespace).",
		[]string{"worker"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *workersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *workersCollector) Collect(ch chan<- prometheus.Metric) {
	type seen struct {
		hw schema.Key
		ms int64
	}
	c.clock.mu.RLock()
	all := make([]seen, 0, len(c.clock.seen))
	for k, v := range c.clock.seen {
		all = append(all, seen{k, v.Load()})
	}
	c.clock.mu.RUnlock()
	keys := make([]schema.Key, len(all))
	for i, s := range all {
		keys[i] = s.hw
	}
	exists := c.inv.hardwareMayExist(keys)
	var gone []schema.Key
	for i, s := range all {
		if !exists[i] {
			gone = append(gone, s.hw)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.ms)/1000, s.hw.String())
	}
	if len(gone) > 0 {
		c.clock.mu.Lock()
		for _, k := range gone {
			delete(c.clock.seen, k)
		}
		c.clock.mu.Unlock()
	}
}

// eventLogCollector exports the event log's bounds, read at scrape time
// (the store keeps them in memory).
type eventLogCollector struct {
	store           state.Store
	events, lastSeq *prometheus.Desc
}

func newEventLogCollector(store state.Store) *eventLogCollector {
	return &eventLogCollector{
		store:   store,
		events:  prometheus.NewDesc("tink_event_log_events", "Events retained in the event log.", nil, nil),
		lastSeq: prometheus.NewDesc("tink_event_log_last_seq", "Sequence number of the newest event.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *eventLogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.lastSeq
}

// Collect implements prometheus.Collector.
func (c *eventLogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := c.store.EventBounds(ctx)
	if err != nil {
		return // the store is closing: no value beats a wrong one
	}
	// The log has no holes, so the retained events are Oldest..Latest.
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(b.Latest+1-b.Oldest))
	ch <- prometheus.MustNewConstMetric(c.lastSeq, prometheus.GaugeValue, float64(b.Latest))
}
