package schema

import (
	"context"
	"maps"
	"slices"
	"sort"
)

// A commit usually changes one or two files of a repository that was valid
// before. Loading it whole again costs ~40 ms for a 20,100-object fleet
// even with every file's parse and every rendering taken from the caches:
// the set-wide checks visit every object (unique names, MACs and IPs,
// references, 10,000 renderings looked up and finished) and every object is
// copied and sorted. So a Loader remembers the last valid Load of a HashFS
// (loadState) and, when the next one changes only the content of a few
// files, keeps every object's name, every hardware's MACs, IPs and bmcRef
// and every workflow's references, and has no WorkflowSet, it checks only
// what the change reaches: the changed objects themselves (decoded and
// checked as in a full Load) and the workflows rendered from a changed
// template, hardware or workflow. Every set-wide rule then holds as before:
// names, MACs and IPs are the same and were unique, references resolve to
// the same keys, and a rendering depends on nothing else (its worker check
// reads the set's MACs, which did not change). Anything else (an error
// anywhere, a file added, removed or renamed, a name, MAC, IP or reference
// changed, tink.cue changed) goes the full way, which finds and words every
// error. TestIncrementalLoadMatchesFull holds both ways to the same Sets
// and errors over a series of commits.

// maxIncrementalFiles is the most changed files an incremental Load takes.
const maxIncrementalFiles = 64

// changeReporter is a HashFS that can say what changed since an earlier
// state of itself, as a Git snapshot made from the one before can
// (gitsource): finding the changed files of a 20,000-file fleet by asking
// every file's hash cost a one-file commit's Load 2-3 ms.
type changeReporter interface {
	// FSToken names this state of the file system.
	FSToken() any
	// ChangedSince returns, when this state has exactly the paths of the
	// one token names and differs from it only in the contents of some
	// files, the paths of those files (ok); otherwise ok is false.
	ChangedSince(token any) (paths []string, ok bool)
}

// loadState is what a valid Load of a HashFS leaves for the next one. Its
// objects are private copies, never handed out, with defaults applied and
// workflows' renderings set; a Load that uses it holds Loader.lastMu.
type loadState struct {
	files, hashes []string
	cfgHash       string
	cfgOK         bool
	defaults      uint64
	where         [][]objectAt // by file, its objects in file order
	ignored       []int        // by file
	set           *Set
	hardware      map[Key]int   // index in set.Hardware
	templates     map[Key]int   // index in set.Templates
	byHardware    map[Key][]int // workflows (index in set.Workflows) by hardwareRef
	byTemplate    map[Key][]int // workflows by templateRef
	macs          map[string]*Hardware
	// token is the FSToken of the file system loaded (nil: none).
	token any
}

// objectAt is where an object is in a Set: its kind's list and index.
type objectAt struct {
	kind string
	i    int
}

func (st *loadState) object(s *Set, at objectAt) Object {
	switch at.kind {
	case KindHardware:
		return s.Hardware[at.i]
	case KindTemplate:
		return s.Templates[at.i]
	case KindWorkflow:
		return s.Workflows[at.i]
	case KindMachine:
		return s.Machines[at.i]
	}
	return nil
}

func keyOf(o Object) Key {
	m := o.GetMeta()
	return Key{m.Namespace, m.Name}
}

// remember keeps the state of a valid Load of fsys for the next one: files
// and hashes as listed, results by file (their objects are the set's),
// the set returned and its defaults number.
func (l *Loader) remember(fsys HashFS, files, hashes []string, results []fileResult, set *Set, defaults uint64) {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	l.last = nil
	if len(set.WorkflowSets) > 0 || slices.Contains(hashes, "") {
		return // expansions depend on every hardware's labels: not kept
	}
	st := &loadState{files: files, hashes: hashes, defaults: defaults,
		where: make([][]objectAt, len(files)), ignored: make([]int, len(files)),
		hardware: make(map[Key]int, len(set.Hardware)), templates: make(map[Key]int, len(set.Templates)),
		byHardware: make(map[Key][]int, len(set.Hardware)), byTemplate: map[Key][]int{}}
	st.cfgHash, st.cfgOK = fsys.FileHash(ConfigFile)
	st.token = fsToken(fsys)
	pos := make(map[Object]objectAt, set.Len())
	st.set = privateCopy(set)
	for i, h := range set.Hardware {
		pos[h] = objectAt{KindHardware, i}
		st.hardware[keyOf(h)] = i
	}
	for i, t := range set.Templates {
		pos[t] = objectAt{KindTemplate, i}
		st.templates[keyOf(t)] = i
	}
	for i, w := range set.Workflows {
		pos[w] = objectAt{KindWorkflow, i}
		ns := w.Metadata.Namespace
		st.byHardware[Key{ns, w.Spec.HardwareRef}] = append(st.byHardware[Key{ns, w.Spec.HardwareRef}], i)
		st.byTemplate[Key{ns, w.Spec.TemplateRef}] = append(st.byTemplate[Key{ns, w.Spec.TemplateRef}], i)
	}
	for i, m := range set.Machines {
		pos[m] = objectAt{KindMachine, i}
	}
	for i, r := range results {
		st.ignored[i] = r.ignored
		for _, o := range r.objects {
			at, ok := pos[o]
			if !ok {
				return // not an object of the set: do not guess
			}
			st.where[i] = append(st.where[i], at)
		}
	}
	st.macs = macIndex(st.set.Hardware)
	l.last = st
}

// forget drops the remembered state (the last Load was not valid).
func (l *Loader) forget() {
	l.lastMu.Lock()
	l.last = nil
	l.lastMu.Unlock()
}

// privateCopy copies every object of s as copyObject does, keeping each
// workflow's rendering.
func privateCopy(s *Set) *Set {
	p := &Set{Config: s.Config, Ignored: s.Ignored}
	p.Hardware = make([]*Hardware, len(s.Hardware))
	for i, h := range s.Hardware {
		p.Hardware[i] = copyObject(h).(*Hardware)
	}
	p.Templates = make([]*Template, len(s.Templates))
	for i, t := range s.Templates {
		p.Templates[i] = copyObject(t).(*Template)
	}
	p.Workflows = make([]*Workflow, len(s.Workflows))
	for i, w := range s.Workflows {
		c := copyObject(w).(*Workflow)
		c.Rendered = w.Rendered
		p.Workflows[i] = c
	}
	p.Machines = make([]*Machine, len(s.Machines))
	for i, m := range s.Machines {
		p.Machines[i] = copyObject(m).(*Machine)
	}
	return p
}

// handOut copies the private set p for a caller, as copyObject does but
// with one allocation per kind: a commit's Load copies the whole fleet.
func handOut(p *Set, cfg *Config, ignored int) *Set {
	s := &Set{Config: cfg, Ignored: ignored}
	hw := make([]Hardware, len(p.Hardware))
	s.Hardware = make([]*Hardware, len(p.Hardware))
	n := 0
	for _, h := range p.Hardware {
		if h.Spec.BMC != nil {
			n++
		}
	}
	bmcs := make([]BMC, 0, n)
	for i, h := range p.Hardware {
		hw[i] = *h
		if h.Spec.BMC != nil {
			bmcs = append(bmcs, *h.Spec.BMC)
			hw[i].Spec.BMC = &bmcs[len(bmcs)-1]
		}
		s.Hardware[i] = &hw[i]
	}
	s.Templates = shallowCopies(p.Templates)
	// Rendered included: the rendering is shared, as a full Load shares it.
	s.Workflows = shallowCopies(p.Workflows)
	s.Machines = shallowCopies(p.Machines)
	return s
}

// shallowCopies returns a copy of each object in one allocation, so the
// caller may change the objects' fields without reaching the originals.
func shallowCopies[T any](src []*T) []*T {
	vals := make([]T, len(src))
	out := make([]*T, len(src))
	for i, v := range src {
		vals[i] = *v
		out[i] = &vals[i]
	}
	return out
}

// sameFleetKeys reports whether b keeps a's MACs, IP addresses and bmcRef,
// interface by interface: what other objects' checks read of a hardware.
func sameFleetKeys(a, b *Hardware) bool {
	if len(a.Spec.Interfaces) != len(b.Spec.Interfaces) {
		return false
	}
	for i := range a.Spec.Interfaces {
		x, y := a.Spec.Interfaces[i].DHCP, b.Spec.Interfaces[i].DHCP
		if (x == nil) != (y == nil) {
			return false
		}
		if x == nil {
			continue
		}
		if x.MAC != y.MAC || (x.IP == nil) != (y.IP == nil) || (x.IP != nil && x.IP.Address != y.IP.Address) {
			return false
		}
	}
	ra, rb := a.Spec.BMCRef, b.Spec.BMCRef
	return (ra == nil) == (rb == nil) && (ra == nil || ra.Name == rb.Name)
}

// loadIncremental loads fsys from the remembered state when the change
// allows (see above), returning nil to ask for a full Load. files are
// fsys's object files as listed by Load.
func (l *Loader) loadIncremental(ctx context.Context, fsys HashFS, cfg *Config, files []string) *Set {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	st := l.last
	if st == nil || len(files) != len(st.files) {
		return nil
	}
	if h, ok := fsys.FileHash(ConfigFile); h != st.cfgHash || ok != st.cfgOK || l.defaultsID(cfg) != st.defaults {
		return nil
	}
	hashes, changed, ok := changedFiles(fsys, files, st)
	if !ok {
		return nil
	}

	// Decode the changed files; each must hold the same objects (kind and
	// name, in order) as before, without a mistake of its own.
	results := make([]fileResult, len(changed))
	fresh := &Set{}
	var swaps []objectAt
	for j, i := range changed {
		results[j] = l.loadFile(fsys, files[i])
		l.cache.put(files[i], hashes[i], results[j])
		r := results[j]
		if len(r.errs) > 0 || len(r.objects) != len(st.where[i]) {
			return nil
		}
		for _, o := range r.objects {
			if _, ok := o.(*WorkflowSet); ok {
				return nil
			}
			fresh.add(o)
		}
		swaps = append(swaps, st.where[i]...)
	}
	applyDefaults(fresh, cfg)
	if st.defaults != 0 {
		markDefaults(fresh, st.defaults)
	}

	next := &Set{Hardware: slices.Clone(st.set.Hardware), Templates: slices.Clone(st.set.Templates),
		Workflows: slices.Clone(st.set.Workflows), Machines: slices.Clone(st.set.Machines)}
	affected := map[int]bool{}
	var unused []*Template
	k := 0
	for j := range changed {
		for _, o := range results[j].objects {
			at := swaps[k]
			k++
			old := st.object(st.set, at)
			if o.GetKind() != at.kind || keyOf(o) != keyOf(old) {
				return nil
			}
			switch o := o.(type) {
			case *Hardware:
				if !sameFleetKeys(old.(*Hardware), o) {
					return nil
				}
				next.Hardware[at.i] = o
				for _, w := range st.byHardware[keyOf(o)] {
					affected[w] = true
				}
			case *Template:
				next.Templates[at.i] = o
				ws := st.byTemplate[keyOf(o)]
				for _, w := range ws {
					affected[w] = true
				}
				if len(ws) == 0 {
					unused = append(unused, o)
				}
			case *Workflow:
				ow := old.(*Workflow)
				if o.Spec.HardwareRef != ow.Spec.HardwareRef || o.Spec.TemplateRef != ow.Spec.TemplateRef {
					return nil
				}
				next.Workflows[at.i] = o
				affected[at.i] = true
			case *Machine:
				next.Machines[at.i] = o
			}
		}
	}

	// Check and render the workflows the change reaches, as checkSet
	// would; any mistake sends the Load the full way, which words it.
	order := make([]int, 0, len(affected))
	for i := range affected {
		order = append(order, i)
	}
	sort.Ints(order)
	var e errs
	jobs := make([]renderJob, 0, len(order))
	for _, i := range order {
		w := next.Workflows[i]
		if w == st.set.Workflows[i] {
			// Unchanged itself but rendered anew: a copy of its own, so that
			// the remembered one stays as it was should this Load fail.
			c := copyObject(w).(*Workflow)
			next.Workflows[i], w = c, c
		}
		ns := w.Metadata.Namespace
		ti, tok := st.templates[Key{ns, w.Spec.TemplateRef}]
		hi, hok := st.hardware[Key{ns, w.Spec.HardwareRef}]
		if !tok || !hok {
			return nil
		}
		tk, hk := Key{ns, w.Spec.TemplateRef}, Key{ns, w.Spec.HardwareRef}
		_, job, ok := checkRefs(&e, w, map[Key]*Template{tk: next.Templates[ti]}, map[Key]*Hardware{hk: next.Hardware[hi]}, st.macs)
		if !ok || len(e.list) > 0 {
			return nil
		}
		jobs = append(jobs, job)
	}
	renders, renderErrs := l.renderEach(ctx, jobs, st.macs)
	if ctx.Err() != nil {
		return nil
	}
	failed := false
	for _, list := range renderErrs {
		failed = failed || len(list) > 0
	}
	for _, t := range unused {
		failed = failed || (t.dataNode != nil && t.parsed != nil && t.parsed.err == nil && len(l.checkUnrendered(t)) > 0)
	}
	if failed {
		// The Load goes the full way: publish the new renderings for it
		// to take instead of rendering again.
		cached := maps.Clone(l.renders.current())
		for i, job := range jobs {
			if k, ok := keyFor(job.w, job.t, job.hw); ok && renders[i] != nil {
				cached[k] = renders[i]
			}
		}
		l.renders.publish(cached)
		return nil
	}
	// On success the renderings live in the remembered workflows; the
	// render cache keeps those of the last full Load (never more entries
	// than it had), and a later full Load renders anew only the workflows
	// changed since.

	// The change holds: remember it.
	for _, h := range fresh.Hardware {
		for _, m := range h.MACs() {
			st.macs[m] = h
		}
	}
	total := 0
	for j, i := range changed {
		st.ignored[i] = results[j].ignored
	}
	for _, n := range st.ignored {
		total += n
	}
	st.hashes = hashes
	st.token = fsToken(fsys)
	st.set = next
	return handOut(next, cfg, total)
}

// fsToken is fsys's FSToken, or nil.
func fsToken(fsys HashFS) any {
	if cr, ok := fsys.(changeReporter); ok {
		return cr.FSToken()
	}
	return nil
}

// changedFiles returns the hashes of files (as Load listed them in fsys)
// and the indexes of those whose hash differs from st's, in order; ok is
// false when the files are not st's or more than maxIncrementalFiles
// changed. When fsys reports its changes since the file system st was
// loaded from, only the changed files are asked: the same paths under the
// same tink.cue (loadIncremental checks it first) list the same files.
func changedFiles(fsys HashFS, files []string, st *loadState) (hashes []string, changed []int, ok bool) {
	if cr, isCR := fsys.(changeReporter); isCR && st.token != nil {
		if paths, same := cr.ChangedSince(st.token); same {
			hashes = slices.Clone(st.hashes)
			for _, p := range paths {
				i, found := slices.BinarySearch(st.files, p)
				if !found {
					continue // not an object file
				}
				h, ok := fsys.FileHash(p)
				if !ok || h == "" {
					return nil, nil, false
				}
				hashes[i] = h
				if h != st.hashes[i] {
					changed = append(changed, i)
				}
			}
			slices.Sort(changed)
			changed = slices.Compact(changed)
			return hashes, changed, len(changed) <= maxIncrementalFiles
		}
	}
	hashes = make([]string, len(files))
	for i, name := range files {
		h, ok := fsys.FileHash(name)
		if !ok || h == "" || name != st.files[i] {
			return nil, nil, false
		}
		hashes[i] = h
		if h != st.hashes[i] {
			if len(changed) == maxIncrementalFiles {
				return nil, nil, false
			}
			changed = append(changed, i)
		}
	}
	return hashes, changed, true
}
