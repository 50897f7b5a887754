package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

// WorkflowSet runs one template on every machine a label selector picks,
// in waves: tinkops' own kind (tinkops.dev/v1alpha1), so Tinkerbell's kinds
// stay exactly Tinkerbell's. Load expands it into one Workflow per selected
// machine (see OwnerLabel); the reconciler's rollout gate decides when each
// of them may start.
type WorkflowSet struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata" tink:"required"`
	Spec     WorkflowSetSpec `json:"spec" tink:"required"`
	source
}

// GetKind returns KindWorkflowSet.
func (*WorkflowSet) GetKind() string { return KindWorkflowSet }

// GetMeta returns the metadata.
func (s *WorkflowSet) GetMeta() *ObjectMeta { return &s.Metadata }

// FieldPos returns where a field of the set is declared (its document when
// the field was not recorded), for errors that need the applied state.
func (s *WorkflowSet) FieldPos(path string) Pos { return s.at(path) }

// WorkflowSetSpec is a Workflow's spec with a selector in place of the
// hardware, and a rollout.
type WorkflowSetSpec struct {
	TemplateRef string `json:"templateRef" tink:"required"`
	// HardwareSelector is a label selector in the syntax of the API's
	// labelSelector (rack=r7,!spare).
	HardwareSelector string `json:"hardwareSelector" tink:"required"`
	// HardwareMap values are Go templates over the machine (see
	// SetMachine); empty means device_1: the machine's first MAC.
	HardwareMap map[string]string `json:"hardwareMap,omitempty"`
	BootOptions *BootOptions      `json:"bootOptions,omitempty"`
	// Run is copied to every owned workflow: raising it runs the whole set
	// again, and resumes a paused set.
	Run     int64    `json:"run,omitempty"`
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Rollout says how fast a set goes.
type Rollout struct {
	// MaxInFlight is how many machines may run at once: N or "N%" of the
	// selected machines (default 1).
	MaxInFlight json.RawMessage `json:"maxInFlight,omitempty"`
	// MaxFailures is how many failed machines the set tolerates: past it
	// the set pauses. N or "N%" (default 0: the first failure pauses it).
	MaxFailures json.RawMessage `json:"maxFailures,omitempty"`
	// Order is the order machines start in: "name" (default) or a label
	// key, whose values then order the machines (then their names).
	Order string `json:"order,omitempty"`
}

// OwnerLabel marks a Workflow that a WorkflowSet owns; its value is the
// set's name.
const OwnerLabel = "tinkops.dev/workflowset"

// DefaultHardwareMap is the hardwareMap of a set that declares none.
var defaultHardwareMap = map[string]string{"device_1": "{{ .MAC }}"}

// OwnedWorkflowName names the workflow a set owns for a machine.
func OwnedWorkflowName(set, hardware string) string { return set + "-" + hardware }

// Limits returns maxInFlight and maxFailures for a set of n machines: a
// percentage is of n, rounded down, and maxInFlight is at least 1.
func (r *Rollout) Limits(n int) (maxInFlight, maxFailures int) {
	maxInFlight, maxFailures = 1, 0
	if r == nil {
		return
	}
	if v, ok := countOrPercent(r.MaxInFlight, n); ok {
		maxInFlight = max(v, 1)
	}
	if v, ok := countOrPercent(r.MaxFailures, n); ok {
		maxFailures = max(v, 0)
	}
	return
}

// countOrPercent reads N or "N%" of n.
func countOrPercent(raw json.RawMessage, n int) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var i int
	if json.Unmarshal(raw, &i) == nil {
		return i, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.Atoi(p)
		return v * n / 100, err == nil
	}
	v, err := strconv.Atoi(s)
	return v, err == nil
}

// Describe prints a limit as declared (5, or 10% of 48 = 4).
func describeLimit(raw json.RawMessage, value int) string {
	var s string
	if json.Unmarshal(raw, &s) == nil && strings.HasSuffix(s, "%") {
		return fmt.Sprintf("%s (%d)", s, value)
	}
	return strconv.Itoa(value)
}

// Summary says in words how the set rolls out over n machines: "at most 5
// at a time, pausing after more than 2 failures".
func (r *Rollout) Summary(n int) string {
	inFlight, failures := r.Limits(n)
	var in, fail json.RawMessage
	if r != nil {
		in, fail = r.MaxInFlight, r.MaxFailures
	}
	s := fmt.Sprintf("at most %s at a time", describeLimit(in, inFlight))
	if failures == 0 {
		return s + ", pausing at the first failure"
	}
	return s + fmt.Sprintf(", pausing after more than %s failures", describeLimit(fail, failures))
}

// SetMachine is what a hardwareMap value is rendered with: {{ .MAC }},
// {{ .Name }}, {{ index .Labels "rack" }}, {{ index .MACs 1 }}, or any
// field of {{ .Hardware }}.
type SetMachine struct {
	Name      string
	Namespace string
	Labels    map[string]string
	MAC       string
	MACs      []string
	Hardware  *Hardware
}

// SortMachines orders machines as a rollout order asks: by the order
// label's value (machines without it last), then by name.
func SortMachines(hw []*Hardware, order string) {
	key := func(h *Hardware) (bool, string) {
		if order == "" || order == "name" {
			return true, ""
		}
		v, ok := h.Metadata.Labels[order]
		return ok, v
	}
	sort.SliceStable(hw, func(i, j int) bool {
		ai, av := key(hw[i])
		bi, bv := key(hw[j])
		if ai != bi {
			return ai
		}
		if av != bv {
			return av < bv
		}
		return hw[i].Metadata.Name < hw[j].Metadata.Name
	})
}

// expandSets adds, for every WorkflowSet, one Workflow per machine its
// selector picks, owned by the set (OwnerLabel) and declared where the set
// is, so the set-wide checks (unique names, references, every template
// rendered for its machine) treat them as declared workflows and report
// their mistakes at the set's lines. A set whose own fields are wrong is
// reported once, on the set, and expands to nothing.
//
// An owned workflow depends only on its set and its machine, so it keeps
// one Identity while neither changes (see expansionCache): the caches
// keyed by Identity (renderings, stored forms) then serve a set of
// thousands of machines as they serve declared workflows. keep says
// whether to keep the expansions for the next Load.
func (l *Loader) expandSets(s *Set, keep bool) ErrorList {
	if len(s.WorkflowSets) == 0 {
		return nil
	}
	prev := l.expanded.get()
	next := map[expansionKey]*Workflow{}
	defer func() {
		if keep {
			l.expanded.set(next)
		}
	}()
	var e errs
	templates := index(s.Templates)
	for _, ws := range s.WorkflowSets {
		if ws.invalid {
			continue
		}
		ns := ws.Metadata.Namespace
		if _, ok := templates[Key{ns, ws.Spec.TemplateRef}]; !ok {
			e.on(ws, ws.at("spec.templateRef"), "spec.templateRef", "template %q is not declared%s", ws.Spec.TemplateRef, inNamespace(ns))
			continue
		}
		if l.Selector == nil {
			e.on(ws, ws.at("spec.hardwareSelector"), "spec.hardwareSelector", "this loader cannot evaluate label selectors")
			continue
		}
		match, err := l.Selector(ws.Spec.HardwareSelector)
		if err != nil {
			e.on(ws, ws.at("spec.hardwareSelector"), "spec.hardwareSelector", "%s", err)
			continue
		}
		hwMap := ws.Spec.HardwareMap
		if len(hwMap) == 0 {
			hwMap = defaultHardwareMap
		}
		tmpls := map[string]*template.Template{}
		bad := false
		for k, v := range hwMap {
			t, err := template.New(k).Option("missingkey=error").Parse(v)
			if err != nil {
				e.on(ws, ws.at("spec.hardwareMap."+k), "spec.hardwareMap."+k, "not a valid template: %s", err)
				bad = true
			}
			tmpls[k] = t
		}
		if bad {
			continue
		}
		for _, h := range s.Hardware {
			if h.Metadata.Namespace != ns || !match(h.Metadata.Labels) {
				continue
			}
			key := expansionKey{IdentityOf(ws), IdentityOf(h)}
			cacheable := !key.set.IsZero() && !key.hardware.IsZero()
			if w, ok := prev[key]; ok && cacheable {
				next[key] = w
				c := *w // each Load renders into its own copy
				s.Workflows = append(s.Workflows, &c)
				continue
			}
			w, errs := expandOne(ws, h, hwMap, tmpls)
			if len(errs) > 0 {
				e.list = append(e.list, errs...)
				continue
			}
			if cacheable {
				w.source.id = l.ids.Add(1)
				kept := *w
				next[key] = &kept
			}
			s.Workflows = append(s.Workflows, w)
		}
	}
	sortObjects(s.Workflows)
	return e.list
}

// expandOne makes the workflow a set owns for machine h.
func expandOne(ws *WorkflowSet, h *Hardware, hwMap map[string]string, tmpls map[string]*template.Template) (*Workflow, ErrorList) {
	var e errs
	m := SetMachine{Name: h.Metadata.Name, Namespace: h.Metadata.Namespace, Labels: h.Metadata.Labels, MACs: h.MACs(), Hardware: h}
	if len(m.MACs) > 0 {
		m.MAC = m.MACs[0]
	}
	out := make(map[string]string, len(hwMap))
	keys := make([]string, 0, len(hwMap))
	for k := range hwMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var b bytes.Buffer
		if err := tmpls[k].Execute(&b, m); err != nil {
			e.on(ws, ws.at("spec.hardwareMap."+k), "spec.hardwareMap."+k, "for hardware %s: %s", h.Metadata.Name, err)
			continue
		}
		out[k] = strings.TrimSpace(b.String())
	}
	name := OwnedWorkflowName(ws.Metadata.Name, h.Metadata.Name)
	if len(name) > 253 {
		e.on(ws, ws.at("metadata.name"), "metadata.name", "the workflow for hardware %s would be named %q, longer than 253 characters", h.Metadata.Name, name)
	}
	if len(e.list) > 0 {
		return nil, e.list
	}
	labels := maps.Clone(ws.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[OwnerLabel] = ws.Metadata.Name
	w := &Workflow{
		TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindWorkflow},
		Metadata: ObjectMeta{Name: name, Namespace: ws.Metadata.Namespace, Labels: labels},
		Spec: WorkflowSpec{
			TemplateRef: ws.Spec.TemplateRef,
			HardwareRef: h.Metadata.Name,
			HardwareMap: out,
			Run:         ws.Spec.Run,
		},
	}
	if b := ws.Spec.BootOptions; b != nil {
		c := *b
		w.Spec.BootOptions = &c
	}
	// Declared where the set is. The zero id keeps every cache from
	// taking one owned workflow for another until expandSets gives it an
	// id of its own.
	w.source = source{pos: ws.pos, spots: ws.spots}
	return w, nil
}

// expansionKey names an owned workflow by what it is made of: its set and
// its machine, each as Load returned it.
type expansionKey struct {
	set, hardware Identity
}

// expansionCache keeps the workflows the last Load expanded, never
// modified once kept, so an unchanged set over unchanged machines gives
// workflows of the same Identity.
type expansionCache = latest[map[expansionKey]*Workflow]

// latest holds what the latest Load published for the next one: replaced
// whole, never modified, so readers need no lock once they have it.
type latest[T any] struct {
	mu sync.Mutex
	v  T
}

func (l *latest[T]) get() T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v
}

func (l *latest[T]) set(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.v = v
}
