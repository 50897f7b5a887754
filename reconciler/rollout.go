package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// A WorkflowSet's rollout is a small gate in front of the engine: Load
// expands the set into owned workflows (schema.OwnerLabel), the plan
// starts their runs like any declared workflow's, and Rollout decides
// which of the waiting runs may start. It never starts more than
// maxInFlight of a set's machines at once, and it pauses the set when more
// than maxFailures of them failed. The pause, and what resumed it, is
// kept in the set's stored status, so it survives a restart:
//
//	status.rollout: {run, paused, pausedAt, reason, accepted}
//
// accepted lists the failed runs (workflow#run) that a resume accepted:
// they no longer count against maxFailures. A bump of the set's run starts
// a new rollout: every machine runs again, the failures and the pause of
// the previous one are forgotten.

// setControl is the rollout state kept in a WorkflowSet's status.
type setControl struct {
	// Run is the set's spec.run this state belongs to.
	Run      int64     `json:"run"`
	Paused   bool      `json:"paused,omitempty"`
	PausedAt time.Time `json:"pausedAt,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	Accepted []string  `json:"accepted,omitempty"`
}

// readControl reads the rollout state of a stored set.
func readControl(o *state.Object) setControl {
	var s struct {
		Rollout setControl `json:"rollout"`
	}
	if len(o.Status) > 0 {
		_ = json.Unmarshal(o.Status, &s) // other writers' fields are ignored
	}
	return s.Rollout
}

// withControl returns o's status with the rollout state replaced.
func withControl(status json.RawMessage, c setControl) json.RawMessage {
	return withStatus(status, "rollout", c)
}

// notStarted is the state a machine without a run is counted under.
const notStarted = "NOT_STARTED"

// member is one machine of a set, with its workflow's latest run.
type member struct {
	workflow, hardware string
	run                int
	state              state.RunState // "" without a run
}

func failedState(s state.RunState) bool { return s == state.RunFailed || s == state.RunTimeout }

// summarize works out a set's status from its members.
func summarize(spec *schema.WorkflowSetSpec, ctl setControl, members []member) state.WorkflowSetStatus {
	st := state.WorkflowSetStatus{Run: spec.Run, Machines: len(members), States: map[string]int{}, Paused: ctl.Paused, PausedAt: ctl.PausedAt, Reason: ctl.Reason}
	st.MaxInFlight, st.MaxFailures = spec.Rollout.Limits(len(members))
	started := 0
	for _, m := range members {
		s := string(m.state)
		if s == "" {
			s = notStarted
		}
		st.States[s]++
		if m.state != "" && m.state != state.RunPending {
			started++
		}
		if failedState(m.state) && !slices.Contains(ctl.Accepted, runID(m.workflow, m.run)) {
			st.Failed = append(st.Failed, m.hardware)
		}
	}
	sort.Strings(st.Failed)
	st.Waves = (len(members) + st.MaxInFlight - 1) / st.MaxInFlight
	st.Wave = (started + st.MaxInFlight - 1) / st.MaxInFlight
	st.FailureBudget = st.MaxFailures - len(st.Failed)
	return st
}

func runID(workflow string, run int) string { return fmt.Sprintf("%s#%d", workflow, run) }

// setSpec decodes a stored set's spec.
func setSpec(o *state.Object) (*schema.WorkflowSetSpec, error) {
	var spec schema.WorkflowSetSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return nil, fmt.Errorf("%s: decode spec: %w", o.Key(), err)
	}
	return &spec, nil
}

// ownedWorkflows lists the workflows a set owns, in its namespace.
func ownedWorkflows(ctx context.Context, st state.Store, set state.ObjectKey) ([]*state.Object, error) {
	var out []*state.Object
	q := state.ObjectQuery{Kind: state.KindWorkflow, Namespace: set.Namespace, Selector: state.MatchLabels(map[string]string{schema.OwnerLabel: set.Name}), Limit: 5000}
	for {
		page, err := st.ListObjects(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			if o.Namespace == set.Namespace {
				out = append(out, o)
			}
		}
		if q.Continue = page.Continue; q.Continue == "" {
			return out, nil
		}
	}
}

// hardwareOf reads the hardware a stored workflow names.
func hardwareOf(o *state.Object) string {
	var spec struct {
		HardwareRef string `json:"hardwareRef"`
	}
	_ = json.Unmarshal(o.Spec, &spec)
	return spec.HardwareRef
}

// WorkflowSetStatus reads a stored set's status from the store: each
// machine's latest run, counted.
func WorkflowSetStatus(ctx context.Context, st state.Store, set *state.Object) (*state.WorkflowSetStatus, error) {
	spec, err := setSpec(set)
	if err != nil {
		return nil, err
	}
	owned, err := ownedWorkflows(ctx, st, set.Key())
	if err != nil {
		return nil, err
	}
	members := make([]member, 0, len(owned))
	for _, o := range owned {
		m := member{workflow: o.Name, hardware: hardwareOf(o), run: LastRun(o)}
		if m.run > 0 {
			r, err := st.GetRun(ctx, state.RunKey{Namespace: o.Namespace, Workflow: o.Name, Number: m.run})
			if err != nil && state.ErrorCode(err) != state.ENOTFOUND {
				return nil, err
			}
			if r != nil {
				m.state = r.State
			}
		}
		members = append(members, m)
	}
	s := summarize(spec, readControl(set), members)
	return &s, nil
}

// ResumeSet resumes a paused set: the failures so far are accepted, so the
// failure budget counts from here. Resuming a set that is not paused
// accepts nothing and changes nothing.
func ResumeSet(ctx context.Context, st state.Store, key state.ObjectKey, actor state.Actor) (*state.Object, error) {
	for attempt := 0; ; attempt++ {
		o, err := st.GetObject(ctx, key)
		if err != nil {
			return nil, err
		}
		ctl := readControl(o)
		if !ctl.Paused {
			return o, nil
		}
		status, err := WorkflowSetStatus(ctx, st, o)
		if err != nil {
			return nil, err
		}
		owned, err := ownedWorkflows(ctx, st, key)
		if err != nil {
			return nil, err
		}
		for _, w := range owned {
			if slices.Contains(status.Failed, hardwareOf(w)) {
				ctl.Accepted = append(ctl.Accepted, runID(w.Name, LastRun(w)))
			}
		}
		ctl.Paused, ctl.PausedAt, ctl.Reason = false, time.Time{}, ""
		next := *o
		next.Status = withControl(o.Status, ctl)
		msg := fmt.Sprintf("workflow set %s resumed by %s; %s accepted (%s), the failure budget of %d counts from here",
			name(key), actor, plural(len(status.Failed), "failed machine is", "failed machines are"), strings.Join(status.Failed, ", "), status.MaxFailures)
		b := &state.Batch{Actor: actor}
		b.Put(&next, msg)
		res, err := st.Apply(ctx, b)
		if state.ErrorCode(err) == state.ECONFLICT && attempt < 3 {
			continue // the rollout gate wrote it meanwhile
		}
		if err != nil {
			return nil, err
		}
		return res.Objects[0], nil
	}
}

// Rollout is the gate the workflow engine asks which waiting runs may
// start (it implements workflow.Gate). It follows the event log for the
// latest run of every workflow, so a decision costs no scan of the runs.
type Rollout struct {
	store state.Store
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	loaded bool
	seq    uint64                                // the last event read
	latest map[state.ObjectKey]member            // by workflow: its latest run
	sets   []*state.Object                       // nil: read again
	owned  map[state.ObjectKey][]*state.Object   // by set; nil: read again
	labels map[state.ObjectKey]map[string]string // hardware labels read
	owner  map[state.ObjectKey]string            // workflow -> its set, by label
}

// NewRollout returns the gate over st; it does no I/O until asked.
func NewRollout(st state.Store, log *slog.Logger) *Rollout {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rollout{store: st, log: log, now: time.Now}
}

// catchUpLocked reads the event log since the last call: run states, and
// which cached objects changed. The caller holds g.mu.
func (g *Rollout) catchUpLocked(ctx context.Context) error {
	if !g.loaded {
		b, err := g.store.EventBounds(ctx)
		if err != nil {
			return err
		}
		g.seq, g.loaded = b.Latest, true
		g.latest, g.sets, g.owned, g.labels, g.owner = nil, nil, nil, nil, nil
	}
	b, err := g.store.EventBounds(ctx)
	if err != nil {
		return err
	}
	const page = 1000
	// Run states matter only once the latest runs are loaded (a fleet
	// with sets): the store then passes over the rest undecoded, every
	// run's start and end after a large sync among them.
	types := []state.EventType{state.EventCreated, state.EventUpdated, state.EventDeleted}
	if g.latest != nil {
		types = append(types, state.EventRunState)
	}
	for g.seq < b.Latest {
		evs, err := g.store.Events(ctx, state.EventQuery{From: g.seq + 1, Limit: page, Filter: state.EventFilter{Types: types}})
		if state.ErrorCode(err) == state.ENOTFOUND {
			g.loaded = false // retention overtook us: read everything again
			return g.catchUpLocked(ctx)
		}
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch {
			case ev.Type == state.EventRunState && ev.Kind == state.KindWorkflow:
				if g.latest != nil {
					g.noteRun(ev.Namespace, ev.Name, ev.Run, ev.State)
				}
			case ev.Kind == schema.KindWorkflowSet:
				g.sets, g.owned = nil, nil
			case ev.Kind == state.KindWorkflow:
				g.owned, g.owner = nil, nil
			case ev.Kind == state.KindHardware:
				g.labels = nil
			}
		}
		full := len(evs) == page
		if len(evs) > 0 {
			// The store may return events written after the bounds were
			// read: they are applied, so start after them next time.
			g.seq = max(g.seq, evs[len(evs)-1].Seq)
		}
		if !full {
			break
		}
	}
	g.seq = max(g.seq, b.Latest)
	return nil
}

// loadLatestLocked reads the latest run of every workflow once, when the
// first set appears (a fleet without sets never pays for it); the event
// log keeps it current from then on. Events read before the listing are
// in it; those after it are applied in order, so the last one wins.
func (g *Rollout) loadLatestLocked(ctx context.Context) error {
	if g.latest != nil {
		return nil
	}
	g.latest = map[state.ObjectKey]member{}
	q := state.RunQuery{Limit: 5000}
	for {
		page, err := g.store.ListRuns(ctx, q)
		if err != nil {
			g.latest = nil
			return err
		}
		for _, r := range page.Runs {
			g.noteRun(r.Namespace, r.Workflow, r.Number, r.State)
		}
		if q.Continue = page.Continue; q.Continue == "" {
			return nil
		}
	}
}

// noteRun records a run's state if it is the workflow's latest run.
func (g *Rollout) noteRun(namespace, workflow string, number int, s state.RunState) {
	k := state.ObjectKey{Kind: state.KindWorkflow, Namespace: namespace, Name: workflow}
	if cur, ok := g.latest[k]; ok && cur.run > number {
		return
	}
	g.latest[k] = member{workflow: workflow, run: number, state: s}
}

// Hold implements workflow.Gate: the waiting runs of sets that are paused,
// whose wave has not come, or whose machine the set no longer selects.
// Runs of workflows no set owns are never held.
func (g *Rollout) Hold(ctx context.Context, active []*state.WorkflowRun) map[state.RunKey]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pending []*state.WorkflowRun
	for _, r := range active {
		if r.State == state.RunPending {
			pending = append(pending, r)
		}
	}
	held := map[state.RunKey]string{}
	failed := func(what string, err error) map[state.RunKey]string {
		g.log.Error("rollout: "+what, "err", err)
		g.loaded = false // read everything again next time
		for _, r := range pending {
			held[r.Key()] = "waits: the rollout gate cannot read the store"
		}
		return held
	}
	if err := g.catchUpLocked(ctx); err != nil {
		return failed("read the event log", err)
	}
	if err := g.readLocked(ctx); err != nil {
		return failed("read workflow sets", err)
	}
	if len(g.sets) > 0 {
		// Sets are decided at every step, waiting runs or not, so that a
		// set whose last wave fails still pauses and says so.
		if err := g.loadLatestLocked(ctx); err != nil {
			return failed("read runs", err)
		}
	} else if len(pending) == 0 {
		return nil
	}
	bySet := map[state.ObjectKey][]*state.WorkflowRun{}
	known := map[state.ObjectKey]state.ObjectKey{} // owned workflow -> set
	for _, s := range g.sets {
		for _, w := range g.owned[s.Key()] {
			known[w.Key()] = s.Key()
		}
	}
	for _, r := range pending {
		wk := state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}
		if sk, ok := known[wk]; ok {
			bySet[sk] = append(bySet[sk], r)
			continue
		}
		// An owned workflow whose set is gone (deleted from Git, prune
		// off) never starts by itself: it was meant to go in waves.
		if owner := g.ownerLocked(ctx, wk); owner != "" {
			held[r.Key()] = fmt.Sprintf("workflow set %s no longer exists; not started", owner)
		}
	}
	for _, s := range g.sets {
		g.decideLocked(ctx, s, bySet[s.Key()], active, held)
	}
	return held
}

// readLocked reads the sets and the workflows each owns, when the event
// log said they changed.
func (g *Rollout) readLocked(ctx context.Context) error {
	if g.sets == nil {
		sets := []*state.Object{} // not nil: none is an answer too
		q := state.ObjectQuery{Kind: schema.KindWorkflowSet, Limit: 1000}
		for {
			page, err := g.store.ListObjects(ctx, q)
			if err != nil {
				return err
			}
			sets = append(sets, page.Objects...)
			if q.Continue = page.Continue; q.Continue == "" {
				break
			}
		}
		g.sets, g.owned = sets, nil
	}
	if g.owned == nil {
		g.owned = map[state.ObjectKey][]*state.Object{}
		for _, s := range g.sets {
			owned, err := ownedWorkflows(ctx, g.store, s.Key())
			if err != nil {
				return err
			}
			g.owned[s.Key()] = owned
		}
	}
	return nil
}

// ownerLocked is the set a workflow's label names ("" for none).
func (g *Rollout) ownerLocked(ctx context.Context, wk state.ObjectKey) string {
	if g.owner == nil {
		g.owner = map[state.ObjectKey]string{}
	}
	if o, ok := g.owner[wk]; ok {
		return o
	}
	o, err := g.store.GetObject(ctx, wk)
	owner := ""
	if err == nil {
		owner = o.Labels[schema.OwnerLabel]
	}
	g.owner[wk] = owner
	return owner
}

// labelsLocked returns a machine's labels (nil when it is gone).
func (g *Rollout) labelsLocked(ctx context.Context, namespace, hardware string) map[string]string {
	if g.labels == nil {
		g.labels = map[state.ObjectKey]map[string]string{}
	}
	k := state.ObjectKey{Kind: state.KindHardware, Namespace: namespace, Name: hardware}
	if l, ok := g.labels[k]; ok {
		return l
	}
	var l map[string]string
	if o, err := g.store.GetObject(ctx, k); err == nil {
		l = o.Labels
		if l == nil {
			l = map[string]string{}
		}
	}
	g.labels[k] = l
	return l
}

// decideLocked decides for one set: pauses it when its failures pass the
// budget (or forgets a pause when its run was bumped), then lets its
// waiting runs start in its order up to maxInFlight running at once.
func (g *Rollout) decideLocked(ctx context.Context, set *state.Object, pending, active []*state.WorkflowRun, held map[state.RunKey]string) {
	hold := func(why string) {
		for _, r := range pending {
			held[r.Key()] = why
		}
	}
	spec, err := setSpec(set)
	if err != nil {
		hold("workflow set " + set.Name + " cannot be read")
		return
	}
	owned := g.owned[set.Key()]
	members := make([]member, 0, len(owned))
	ownedBy := map[string]bool{}
	for _, w := range owned {
		m := g.latest[w.Key()]
		m.workflow, m.hardware = w.Name, hardwareOf(w)
		if m.run == 0 {
			m.state = ""
		}
		members = append(members, m)
		ownedBy[w.Name] = true
	}
	ctl := readControl(set)
	status := summarize(spec, ctl, members)
	next := ctl
	msg := ""
	switch {
	case ctl.Run != spec.Run:
		next = setControl{Run: spec.Run}
		msg = fmt.Sprintf("workflow set %s: run %d starts a new rollout", name(set.Key()), spec.Run)
		status = summarize(spec, next, members)
	case !ctl.Paused && len(status.Failed) > status.MaxFailures:
		next.Paused, next.PausedAt = true, g.now()
		next.Reason = fmt.Sprintf("%s failed (%s), more than maxFailures %d", plural(len(status.Failed), "machine", "machines"), strings.Join(status.Failed, ", "), status.MaxFailures)
		msg = fmt.Sprintf("workflow set %s paused: %s; no machine starts until `tink workflowset resume %s` or a bump of its run",
			name(set.Key()), next.Reason, set.Name)
	}
	if msg != "" {
		o := *set
		o.Status = withControl(set.Status, next)
		b := &state.Batch{Actor: state.ActorReconciler}
		b.Put(&o, msg)
		if _, err := g.store.Apply(ctx, b); err != nil {
			// Another writer (a resume, a sync) moved the set: decide
			// again next time, and start nothing of it now.
			g.log.Warn("rollout: write workflow set status", "set", set.Name, "err", err)
			g.sets = nil
			hold("workflow set " + set.Name + " is being updated")
			return
		}
		g.log.Info(msg, "set", set.Name)
		g.sets = nil // read the new version next time
		ctl = next
	}
	if ctl.Paused {
		hold(fmt.Sprintf("workflow set %s is paused: %s", set.Name, ctl.Reason))
		return
	}
	running := 0
	for _, r := range active {
		if (r.State == state.RunPreparing || r.State == state.RunRunning) && r.Namespace == set.Namespace && ownedBy[r.Workflow] {
			running++
		}
	}
	match, err := state.SetSelector(spec.HardwareSelector)
	if err != nil {
		hold(fmt.Sprintf("workflow set %s: %s", set.Name, err))
		return
	}
	order := ""
	if spec.Rollout != nil {
		order = spec.Rollout.Order
	}
	type cand struct {
		r      *state.WorkflowRun
		labels map[string]string
	}
	cands := make([]cand, 0, len(pending))
	for _, r := range pending {
		// A run left waiting by a pause, whose workflow has a newer run
		// since the set's run was bumped, would re-image its machine twice.
		if latest := g.latest[state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}]; latest.run > r.Number {
			held[r.Key()] = fmt.Sprintf("superseded by run %d of workflow set %s's new rollout; not started", latest.run, set.Name)
			continue
		}
		cands = append(cands, cand{r, g.labelsLocked(ctx, r.Namespace, r.Hardware)})
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if order != "" && order != "name" {
			av, aok := a.labels[order]
			bv, bok := b.labels[order]
			if aok != bok {
				return aok
			}
			if av != bv {
				return av < bv
			}
		}
		return a.r.Hardware < b.r.Hardware
	})
	budget := status.MaxInFlight - running
	for _, c := range cands {
		switch {
		case c.labels == nil || !match(c.labels):
			held[c.r.Key()] = fmt.Sprintf("workflow set %s no longer selects %s; not started", set.Name, c.r.Hardware)
		case budget <= 0:
			// The same words for every waiting run whatever is running: the
			// engine writes a run whose reason changes, and thousands wait.
			held[c.r.Key()] = fmt.Sprintf("waits for its wave in workflow set %s (at most %d at a time)", set.Name, status.MaxInFlight)
		default:
			budget--
		}
	}
}
