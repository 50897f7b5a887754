package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Op is what a plan does to one object.
type Op string

// Plan operations.
const (
	OpCreate    Op = "create"
	OpUpdate    Op = "update"
	OpDelete    Op = "delete"
	OpUnchanged Op = "unchanged"
	// OpOrphaned is a Git-managed object no longer in Git, kept because
	// prune is off or because deleting it is unsafe.
	OpOrphaned Op = "orphaned"
)

// FieldChange is one field that differs, with JSON values; Old is empty
// when the field is added and New when it is removed.
type FieldChange struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// Change is what a plan does to one object and what follows from it.
type Change struct {
	Op           Op              `json:"op"`
	Key          state.ObjectKey `json:"key"`
	File         string          `json:"file,omitempty"`
	Fields       []FieldChange   `json:"fields,omitempty"`
	Consequences []string        `json:"consequences,omitempty"`

	desired *state.Object // what is written (create, update)
	actual  *state.Object // what is there (update, delete, orphaned)
}

// Plan is the difference between a desired set and the store, with what
// each change will cause, in words a reviewer can check before merging.
// MakePlan is pure: the same inputs give the same plan, so `tink diff` on a
// pull request shows exactly what the server will do.
type Plan struct {
	Revision string   `json:"revision"`
	Changes  []Change `json:"changes"`
	// Unchanged counts objects the plan leaves alone.
	Unchanged int `json:"unchanged"`
	// Blocked is set when the plan must not be applied as it is (the prune
	// guard); it says why and how to proceed.
	Blocked string `json:"blocked,omitempty"`

	runs []*state.WorkflowRun
}

// Consequences lists every consequence sentence: workflows that start first,
// then the rest in object order.
func (p *Plan) Consequences() []string {
	var sets, starts, rest []string
	for _, c := range p.Changes {
		for _, s := range c.Consequences {
			if strings.HasPrefix(s, "workflow set ") {
				sets = append(sets, s) // a set's summary before its machines
			} else if strings.HasPrefix(s, "workflow ") && strings.Contains(s, " will start") || strings.Contains(s, " will run again") {
				starts = append(starts, s)
			} else {
				rest = append(rest, s)
			}
		}
	}
	return append(append(sets, starts...), rest...)
}

// Count returns how many changes have op.
func (p *Plan) Count(op Op) int {
	n := 0
	for _, c := range p.Changes {
		if c.Op == op {
			n++
		}
	}
	return n
}

// Empty reports whether applying the plan would write nothing.
func (p *Plan) Empty() bool {
	return p.Count(OpCreate)+p.Count(OpUpdate)+p.Count(OpDelete) == 0 && len(p.runs) == 0
}

// Options tune a plan.
type Options struct {
	// Prune deletes Git-managed objects that are no longer in Git.
	Prune bool
	// MaxPruneShare is the largest share of Git-managed objects one plan
	// may delete (default 0.5): a mistaken `git rm -r hardware/` must not
	// wipe the inventory.
	MaxPruneShare float64
	// ForcePrune applies a plan beyond MaxPruneShare.
	ForcePrune bool

	// syncing leaves out the field lists of created objects: a plan made
	// to be applied (Sync) shows them to nobody, and a first sync of a
	// fleet of 20,000 objects held them all (18 MB) through its apply.
	syncing bool
}

// Actual is what the store holds, as MakePlan needs it.
type Actual struct {
	Objects []*state.Object
	// Runs holds the runs that have not ended. MakePlan looks only at the
	// runs of workflows it creates, changes or prunes and of hardware it
	// prunes, so a caller may leave out the others.
	Runs []*state.WorkflowRun
	// RunNumbers holds the highest run number in the store of workflows
	// whose runs may outlive their object: runs stay when a workflow is
	// deleted through the API, and a workflow of the same name declared
	// later numbers its runs after them. A workflow's own latest run is
	// also in its stored status; the higher of the two counts.
	RunNumbers map[state.ObjectKey]int
}

// kindOrder applies BMC connections before the hardware that names them,
// hardware and templates before the workflows that use them.
func kindOrder(kind string) int {
	switch kind {
	case state.KindMachine:
		return 0
	case state.KindHardware:
		return 1
	case state.KindTemplate:
		return 2
	case state.KindWorkflow:
		return 3
	}
	return 4
}

// forRepository returns the options a repository's tink.cue asks for: its
// prune block, when present, overrides the server's prune settings.
func (o Options) forRepository(cfg *schema.Config) Options {
	if cfg == nil || cfg.Prune == nil {
		return o
	}
	o.Prune = cfg.Prune.Enabled
	if cfg.Prune.MaxShare > 0 {
		o.MaxPruneShare = cfg.Prune.MaxShare
	}
	return o
}

// MakePlan compares the desired set (a validated repository at revision)
// with what the store holds.
func MakePlan(set *schema.Set, revision string, actual Actual, opts Options) (*Plan, error) {
	desired, err := desiredObjects(set, revision)
	if err != nil {
		return nil, err
	}
	have := make(map[state.ObjectKey]*state.Object, len(actual.Objects))
	for _, o := range actual.Objects {
		have[o.Key()] = o
	}
	return makePlan(set, desired, revision, have, actual, opts.forRepository(set.Config), wholeSet), nil
}

// planScope says what part of the declared objects makePlan is given.
type planScope struct {
	// others counts the declared objects left out of desired, each clean
	// (see clean): the plan leaves them unchanged, and each is a
	// Git-managed object still declared.
	others int
	// gitObjects is the number of Git-managed objects in have, or -1 to
	// have makePlan count them.
	gitObjects int
	// unclean, when not nil, receives the index in desired of each object
	// that is not clean.
	unclean *[]int
}

// wholeSet is the scope of a plan given every declared object.
var wholeSet = planScope{gitObjects: -1}

// clean reports whether the store's object a is what d declares, as Git
// last wrote it: same file, labels, annotations and spec, no override. A
// plan leaves such an object unchanged and asks nothing about it (no run,
// no consequence); any other declared object may differ.
func clean(a, d *state.Object) bool {
	return a != nil && a.Source == state.SourceGit && a.Override == nil && a.File == d.File && sameContent(a, d)
}

// makePlan is MakePlan with the desired objects in their stored form
// (desiredObjects), and the store's objects by key (have; actual.Objects
// is not read): the reconciler's mirror keeps them so, and building the
// map anew cost a one-file commit 20,000 insertions. It writes the desired
// objects' bookkeeping fields. scope says whether desired is every
// declared object (wholeSet) or a part of them (incremental.go).
func makePlan(set *schema.Set, desired []*state.Object, revision string, have map[state.ObjectKey]*state.Object, actual Actual, opts Options, scope planScope) *Plan {
	if opts.MaxPruneShare <= 0 {
		opts.MaxPruneShare = 0.5
	}
	active := map[state.ObjectKey][]*state.WorkflowRun{} // by hardware
	activeWF := map[state.ObjectKey]*state.WorkflowRun{}
	for _, r := range actual.Runs {
		wk := state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}
		if !r.State.Terminal() {
			hk := state.ObjectKey{Kind: state.KindHardware, Namespace: r.Namespace, Name: r.Hardware}
			active[hk] = append(active[hk], r)
			// The other machines the run's tasks run on are as busy.
			for _, m := range r.Machines {
				ns, name, ok := strings.Cut(m, "/")
				if !ok {
					ns, name = "", m
				}
				mk := state.ObjectKey{Kind: state.KindHardware, Namespace: ns, Name: name}
				active[mk] = append(active[mk], r)
			}
			activeWF[wk] = r
		}
	}
	// The declared workflows by key, and by the template they use, are
	// needed only for the workflows and templates that change: built on
	// first use.
	var workflows map[state.ObjectKey]*schema.Workflow
	var usedBy map[state.ObjectKey][]string
	var hardware map[state.ObjectKey]*schema.Hardware
	index := func() {
		if workflows != nil {
			return
		}
		hardware = make(map[state.ObjectKey]*schema.Hardware, len(set.Hardware))
		for _, h := range set.Hardware {
			hardware[state.ObjectKey{Kind: state.KindHardware, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}] = h
		}
		workflows = make(map[state.ObjectKey]*schema.Workflow, len(set.Workflows))
		usedBy = map[state.ObjectKey][]string{}
		for _, w := range set.Workflows {
			workflows[state.ObjectKey{Kind: state.KindWorkflow, Namespace: w.Metadata.Namespace, Name: w.Metadata.Name}] = w
			tk := state.ObjectKey{Kind: state.KindTemplate, Namespace: w.Metadata.Namespace, Name: w.Spec.TemplateRef}
			usedBy[tk] = append(usedBy[tk], w.Metadata.Name)
		}
	}

	p := &Plan{Revision: revision, Unchanged: scope.others}
	var created [][]FieldChange
	if !opts.syncing {
		created = createdFields(desired, have)
	}
	matchedGit := scope.others // Git-managed objects still declared
	for i, d := range desired {
		key := d.Key()
		a := have[key]
		if a != nil && a.Source == state.SourceGit {
			matchedGit++
		}
		if clean(a, d) {
			// What the default case below finds unchanged, without a diff.
			p.Unchanged++
			continue
		}
		if scope.unclean != nil {
			*scope.unclean = append(*scope.unclean, i)
		}
		c := Change{Key: key, File: d.File, desired: d, actual: a}
		switch {
		case a == nil:
			c.Op = OpCreate
			if created != nil {
				c.Fields = created[i]
			}
		case a.Override != nil && state.JSONEqual(a.Override.GitSpec, d.Spec) && metaEqual(a, d):
			// Git has not changed the object since the API override: the
			// override stays in effect (shown as drift in status).
			p.Unchanged++
			continue
		default:
			base := a
			if a.Override != nil {
				// Compare with what Git declared, to show what Git changes.
				g := *a
				g.Spec = a.Override.GitSpec
				base = &g
			}
			if !sameContent(base, d) {
				c.Fields = diffObject(base, d)
			}
			if len(c.Fields) == 0 && a.File == d.File && a.Source == state.SourceGit && a.Override == nil {
				p.Unchanged++
				continue
			}
			c.Op = OpUpdate
			d.ResourceVersion = a.ResourceVersion
			d.Status = a.Status
			d.CreatedAt = a.CreatedAt
			if len(c.Fields) == 0 {
				// Only the file moved: keep the revision the content came from.
				d.Revision = a.Revision
			}
			if a.Source == state.SourceAPI {
				c.Consequences = append(c.Consequences, fmt.Sprintf("%s %s was created through the API; Git takes it over", noun(key.Kind), name(key)))
			}
			if a.Override != nil {
				c.Consequences = append(c.Consequences, fmt.Sprintf("Git changes %s %s again: the API override by %s is dropped", noun(key.Kind), name(key), strings.TrimPrefix(string(a.Override.By), "api:")))
			}
		}
		switch key.Kind {
		case state.KindWorkflow:
			index()
			w := workflows[key]
			hw := hardware[state.ObjectKey{Kind: state.KindHardware, Namespace: w.Metadata.Namespace, Name: w.Spec.HardwareRef}]
			p.planRun(&c, w, hw, LastRun(a), actual.RunNumbers[key], activeWF[key])
		case state.KindTemplate:
			if c.Op == OpUpdate && hasSpecChange(c.Fields) {
				index()
				n := len(usedBy[key])
				verb := "use"
				if n == 1 {
					verb = "uses"
				}
				c.Consequences = append(c.Consequences, fmt.Sprintf("template %s changed: %s %s it; none will re-run", name(key), plural(n, "workflow", "workflows"), verb))
			}
		case state.KindHardware:
			if c.Op == OpUpdate {
				c.Consequences = append(c.Consequences, hardwareConsequences(key, c.Fields)...)
			}
		}
		p.Changes = append(p.Changes, c)
	}

	gitCount, deletes := scope.gitObjects, 0
	if gitCount < 0 {
		gitCount = 0
		for _, a := range have {
			if a.Source == state.SourceGit {
				gitCount++
			}
		}
	}
	// Only when some Git-managed object is no longer declared is it worth
	// finding which.
	var seen map[state.ObjectKey]bool
	// A part of the set comes only with every Git-managed object declared
	// (planIncremental checks): which are is not known here.
	if gitCount > matchedGit {
		seen = make(map[state.ObjectKey]bool, len(desired))
		for _, d := range desired {
			seen[d.Key()] = true
		}
	}
	for key, a := range have {
		if seen == nil {
			break
		}
		if a.Source != state.SourceGit || seen[key] {
			continue
		}
		c := Change{Key: key, File: a.File, actual: a, Fields: diffObject(a, nil)}
		switch {
		case !opts.Prune:
			c.Op = OpOrphaned
			c.Consequences = []string{fmt.Sprintf("%s %s is no longer in Git; kept because prune is off", noun(key.Kind), name(key))}
		case key.Kind == state.KindHardware && len(active[key]) > 0:
			c.Op = OpOrphaned
			c.Consequences = []string{fmt.Sprintf("hardware %s is no longer in Git but has an active run (%s); it is kept", name(key), runList(active[key]))}
		case key.Kind == state.KindWorkflow && activeWF[key] != nil:
			r := activeWF[key]
			c.Op = OpOrphaned
			c.Consequences = []string{fmt.Sprintf("workflow %s is no longer in Git but run %d is %s; it is kept", name(key), r.Number, r.State)}
		default:
			c.Op = OpDelete
			deletes++
			c.Consequences = []string{fmt.Sprintf("%s %s will be removed (prune)", noun(key.Kind), name(key))}
		}
		p.Changes = append(p.Changes, c)
	}
	if deletes > 0 && float64(deletes) > opts.MaxPruneShare*float64(gitCount) && !opts.ForcePrune {
		p.Blocked = fmt.Sprintf("the plan deletes %d of %d Git-managed objects, more than %.0f%%; nothing was applied (if this is intended, apply it with forced prune)",
			deletes, gitCount, opts.MaxPruneShare*100)
	}
	p.setConsequences(set)
	sort.SliceStable(p.Changes, func(i, j int) bool {
		a, b := p.Changes[i].Key, p.Changes[j].Key
		if kindOrder(a.Kind) != kindOrder(b.Kind) {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return p
}

// parallelFields is the fewest objects whose independent work (their
// fields, their stored form) shareOut shares out over the CPUs.
const parallelFields = 512

// shareOut calls fn for 0..n-1: on every CPU when n is at least twice
// parallelFields, else on the caller's goroutine. Each call touches only
// what belongs to its i.
func shareOut(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelFields)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// createdFields lists the fields of each desired object the store does not
// have (diffObject against nothing), by index in desired. Each is
// independent of the others, and a first sync of a large fleet spends most
// of its plan on them (0.25 s of CPU for 20,100 objects), so many are
// shared out over the CPUs.
func createdFields(desired []*state.Object, have map[state.ObjectKey]*state.Object) [][]FieldChange {
	var todo []int
	for i, d := range desired {
		if have[d.Key()] == nil {
			todo = append(todo, i)
		}
	}
	out := make([][]FieldChange, len(desired))
	shareOut(len(todo), func(j int) { out[todo[j]] = diffObject(nil, desired[todo[j]]) })
	return out
}

// sameContent reports whether two objects have the same labels,
// annotations and spec byte for byte, which diffObject would find equal
// too: most objects of a plan are unchanged, and comparing bytes spares
// decoding both specs.
func sameContent(a, b *state.Object) bool {
	return bytes.Equal(a.Spec, b.Spec) && metaEqual(a, b)
}

// planRun decides whether a declared workflow starts a run: a new workflow
// runs once; a change to its own spec runs it again (after the current run
// ends); a template change alone never does. last is the object's latest
// run (from its status); stored is the highest run number in the store,
// which is higher when runs of an earlier workflow of that name remain.
func (p *Plan) planRun(c *Change, w *schema.Workflow, hw *schema.Hardware, last, stored int, active *state.WorkflowRun) {
	if w == nil || c.Op == OpUnchanged {
		return
	}
	if disabled(w) {
		if c.Op == OpCreate || fieldChanged(c.Fields, "spec.disabled") {
			c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s is disabled: it will not run", w.Metadata.Name))
		}
		return
	}
	if !StartsRun(w, last, c.Fields) {
		return
	}
	number := NextRunNumber(last, stored)
	run := PendingRun(w, number, "declared in Git")
	run.Revision = p.Revision
	what := startSentence(w, hw)
	switch {
	case number == 1:
		c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s will start: %s", w.Metadata.Name, what))
	case last == 0 && active != nil:
		run.Reason = fmt.Sprintf("declared in Git; waits for run %d of an earlier workflow of that name to end", active.Number)
		c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s will start (run %d, after the runs of an earlier workflow of that name) once run %d, now %s, ends: %s",
			w.Metadata.Name, number, active.Number, active.State, what))
	case last == 0:
		c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s will start (run %d, after the runs of an earlier workflow of that name): %s", w.Metadata.Name, number, what))
	case active != nil:
		run.Reason = fmt.Sprintf("spec changed; waits for run %d to end", active.Number)
		c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s will run again (run %d) once run %d, now %s, ends: %s", w.Metadata.Name, number, active.Number, active.State, what))
	default:
		run.Reason = "spec changed"
		c.Consequences = append(c.Consequences, fmt.Sprintf("workflow %s will run again (run %d): %s", w.Metadata.Name, number, what))
	}
	p.runs = append(p.runs, run)
}

// StartsRun is the run-start rule, one for Git and the API: a disabled
// workflow does not run; one that never ran (last, its latest run number,
// is 0: it is new, or enabled for the first time) runs once; one that ran
// runs again when its own spec changed (changes, from Diff), anything but
// spec.disabled. A template change alone re-runs nothing: it is not a
// change of the workflow. The new run waits for the current one to end.
func StartsRun(w *schema.Workflow, last int, changes []FieldChange) bool {
	return !disabled(w) && (last == 0 || runSpecChanged(changes))
}

// NextRunNumber numbers a new run of a workflow after its latest run
// (last) and after the highest run of its name in the store (stored),
// which is higher when runs of an earlier, deleted workflow of that name
// remain.
func NextRunNumber(last, stored int) int { return max(last, stored) + 1 }

// PendingRun is a new run of w, waiting to start, with why it was created.
func PendingRun(w *schema.Workflow, number int, reason string) *state.WorkflowRun {
	return &state.WorkflowRun{
		Namespace: w.Metadata.Namespace,
		Workflow:  w.Metadata.Name,
		Number:    number,
		State:     state.RunPending,
		Template:  w.Spec.TemplateRef,
		Hardware:  w.Spec.HardwareRef,
		Reason:    reason,
	}
}

// Diff lists the fields that differ between two stored versions of an
// object (nil: none): labels, annotations and the spec.
func Diff(a, b *state.Object) []FieldChange { return diffObject(a, b) }

func disabled(w *schema.Workflow) bool { return w.Spec.Disabled != nil && *w.Spec.Disabled }

// startSentence says what a run of w does to its machine hwObj (nil when
// the hardware is not declared), BMC actions included.
func startSentence(w *schema.Workflow, hwObj *schema.Hardware) string {
	hw := w.Spec.HardwareRef
	actions := ""
	if w.Rendered != nil {
		n := 0
		for _, t := range w.Rendered.Tasks {
			n += len(t.Actions)
		}
		actions = " (" + plural(n, "action", "actions") + ")"
	}
	tmpl := fmt.Sprintf("run template %s%s", w.Spec.TemplateRef, actions)
	b := w.Spec.BootOptions
	var s string
	switch {
	case b == nil || b.BootMode == "":
		s = fmt.Sprintf("%s will %s", hw, tmpl)
	default:
		// The BMC package's own words, so the plan says exactly what
		// Prepare will do: "node-01 will be powered off, set to PXE once,
		// powered on".
		s = fmt.Sprintf("%s, then %s", bmc.Describe(w, hwObj), tmpl)
		if len(bmc.Steps(w, hwObj)) == 0 {
			s = fmt.Sprintf("%s will %s", hw, tmpl)
		}
	}
	if b != nil && b.ToggleAllowNetboot {
		s += "; PXE is allowed for the run and turned off once it succeeds"
	}
	return s
}

// runSpecChanged reports whether a workflow's own spec changed in a way
// that asks for a new run (anything but disabled).
func runSpecChanged(fields []FieldChange) bool {
	for _, f := range fields {
		if strings.HasPrefix(f.Path, "spec.") && f.Path != "spec.disabled" {
			return true
		}
	}
	return false
}

func fieldChanged(fields []FieldChange, path string) bool {
	for _, f := range fields {
		if f.Path == path {
			return true
		}
	}
	return false
}

func hasSpecChange(fields []FieldChange) bool {
	for _, f := range fields {
		if strings.HasPrefix(f.Path, "spec.") {
			return true
		}
	}
	return false
}

// hardwareConsequences explains hardware changes that reach the machine.
func hardwareConsequences(key state.ObjectKey, fields []FieldChange) []string {
	var out []string
	var bmc, net bool
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f.Path, "spec.bmc"):
			bmc = true
		case strings.HasPrefix(f.Path, "spec.interfaces"):
			net = true
		}
	}
	if net {
		out = append(out, fmt.Sprintf("hardware %s: its network interfaces change (DHCP and netboot answers follow)", name(key)))
	}
	if bmc {
		out = append(out, fmt.Sprintf("hardware %s: its BMC connection changes", name(key)))
	}
	return out
}

func runList(runs []*state.WorkflowRun) string {
	var s []string
	for _, r := range runs {
		s = append(s, fmt.Sprintf("%s#%d %s", r.Workflow, r.Number, r.State))
	}
	return strings.Join(s, ", ")
}

func noun(kind string) string {
	if kind == state.KindMachine {
		return "BMC machine"
	}
	return strings.ToLower(kind)
}

// name prints an object's name with its namespace when it has one.
func name(k state.ObjectKey) string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func metaEqual(a, b *state.Object) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

// maxFields bounds the fields listed per change; a new object of 200
// fields is summarised.
const maxFields = 40

// diffObject lists the fields that differ between two objects (nil for
// none): labels, annotations and the spec.
func diffObject(a, b *state.Object) []FieldChange {
	var out []FieldChange
	get := func(o *state.Object) (map[string]string, map[string]string, any) {
		if o == nil {
			return nil, nil, nil
		}
		var spec any
		if len(o.Spec) > 0 {
			_ = json.Unmarshal(o.Spec, &spec)
		}
		return o.Labels, o.Annotations, spec
	}
	al, aa, as := get(a)
	bl, ba, bs := get(b)
	diffValue("metadata.labels", toAny(al), toAny(bl), &out)
	diffValue("metadata.annotations", toAny(aa), toAny(ba), &out)
	diffValue("spec", as, bs, &out)
	if len(out) > maxFields {
		n := len(out) - maxFields
		out = append(out[:maxFields], FieldChange{Path: fmt.Sprintf("(%d more fields)", n)})
	}
	return out
}

func toAny(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// diffValue walks two JSON values and records differing leaves.
func diffValue(path string, a, b any, out *[]FieldChange) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if (aok || a == nil) && (bok || b == nil) && (aok || bok) {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			diffValue(joinPath(path, k), am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if (aok || a == nil) && (bok || b == nil) && (aok || bok) {
		for i := 0; i < max(len(al), len(bl)); i++ {
			var x, y any
			if i < len(al) {
				x = al[i]
			}
			if i < len(bl) {
				y = bl[i]
			}
			diffValue(fmt.Sprintf("%s[%d]", path, i), x, y, out)
		}
		return
	}
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if bytes.Equal(ab, bb) {
		return
	}
	fc := FieldChange{Path: path}
	if a != nil {
		fc.Old = short(string(ab))
	}
	if b != nil {
		fc.New = short(string(bb))
	}
	*out = append(*out, fc)
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, ".[]\" ") || key == "" {
		key = strconv.Quote(key)
	}
	return path + "." + key
}

// short keeps values readable in a plan: long text shows its start.
func short(s string) string {
	if len(s) <= 120 {
		return s
	}
	return s[:100] + fmt.Sprintf("... (%d bytes)", len(s))
}
