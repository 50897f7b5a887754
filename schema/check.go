package schema

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkObject holds the per-object rules that CUE cannot state with a clear
// message, or at all.
func (l *Loader) checkObject(obj Object, file string, n *yaml.Node) ErrorList {
	var e errs
	switch o := obj.(type) {
	case *Hardware:
		for i, iface := range o.Spec.Interfaces {
			if d := iface.DHCP; d != nil && (d.TFTPServerName != "") != (d.BootFileName != "") {
				p := fmt.Sprintf("spec.interfaces[%d].dhcp", i)
				node, _, _ := locate(n, []string{"spec", "interfaces", fmt.Sprint(i), "dhcp"}, false)
				e.add(Pos{File: file, Line: node.Line, Column: node.Column}, p, "tftp_server_name and boot_file_name must both be set or both be empty")
			}
		}
		if ref := o.Spec.BMCRef; ref != nil {
			if o.Spec.BMC != nil {
				e.add(o.at("spec.bmcRef"), "spec.bmcRef", "set either bmc or bmcRef, not both")
			}
			if ref.Kind != "" && ref.Kind != KindMachine {
				e.add(o.at("spec.bmcRef"), "spec.bmcRef.kind", "bmcRef must name a Machine, got kind %q", ref.Kind)
			}
			if ref.APIGroup != nil && *ref.APIGroup != "" && *ref.APIGroup != "bmc.tinkerbell.org" {
				e.add(o.at("spec.bmcRef"), "spec.bmcRef.apiGroup", "bmcRef apiGroup must be bmc.tinkerbell.org, got %q", *ref.APIGroup)
			}
		}
	case *Template:
		e.list = append(e.list, l.checkTemplateText(o)...)
	case *Workflow:
		if b := o.Spec.BootOptions; b != nil {
			if (b.BootMode == BootModeISO || b.BootMode == BootModeIsoboot) && b.ISOURL == "" {
				e.add(o.at("spec.hardwareRef"), "spec.bootOptions.isoURL", "bootMode %s needs isoURL", b.BootMode)
			}
			if b.BootMode == BootModeCustomboot && b.CustombootConfig == nil {
				e.add(o.at("spec.hardwareRef"), "spec.bootOptions.custombootConfig", "bootMode customboot needs custombootConfig")
			}
		}
	case *Machine:
		if o.Spec.Connection.Port == 0 {
			o.Spec.Connection.Port = DefaultBMCPort
		}
	}
	return e.list
}

// checkTemplateText parses a template's Go template text once; a syntax
// error points at the template's line in its file.
func (l *Loader) checkTemplateText(t *Template) ErrorList {
	if t.Spec.Data == nil || *t.Spec.Data == "" {
		return nil // CUE reports the missing data
	}
	if !t.Bare {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(*t.Spec.Data), &root); err == nil && len(root.Content) > 0 && deref(root.Content[0]).Kind == yaml.MappingNode {
			t.dataNode = deref(root.Content[0])
		}
	}
	tmpl, err := l.renderer.Parse("t", *t.Spec.Data)
	text := *t.Spec.Data
	t.parsed = &parsedTemplate{tmpl: tmpl, err: err,
		readsObject: strings.Contains(text, ".hardware") || strings.Contains(text, `"hardware"`) || strings.Contains(text, "`hardware`")}
	if err == nil {
		return nil
	}
	line, col, msg := l.tmplErrs.parse(err)
	return ErrorList{{Pos: t.textPos(line, col), Path: "spec.data", Message: "template syntax: " + msg}}
}

// textPos maps a line and column of the template text to the file.
func (t *Template) textPos(line, col int) Pos {
	p := t.at("spec.data")
	if line <= 0 {
		return p
	}
	p.Line = t.dataLine + line - 1
	if col <= 0 {
		// text/template reports parse errors by line only: point at where
		// the line's text starts.
		col = 1
		lines := strings.Split(*t.Spec.Data, "\n")
		if line-1 < len(lines) {
			l := lines[line-1]
			col = len(l) - len(strings.TrimLeft(l, " \t")) + 1
		}
	}
	p.Column = t.dataCol + col - 1
	return p
}

// checkSet holds the rules that need the whole repository: unique names,
// MACs and IPs; references; every template rendered for its workflows.
//
// keep says whether to keep the renderings for the next Load.
func (l *Loader) checkSet(ctx context.Context, s *Set, keep bool) ErrorList {
	var e errs
	checkUnique(&e, s.Hardware)
	checkUnique(&e, s.Templates)
	checkUnique(&e, s.Workflows)
	checkUnique(&e, s.Machines)
	checkUnique(&e, s.WorkflowSets)

	macs := checkFleet(&e, s.Hardware, index(s.Machines))
	hardware := index(s.Hardware)
	templates := index(s.Templates)
	var jobs []renderJob
	used := map[*Template]bool{}
	for _, w := range s.Workflows {
		t, j, ok := checkRefs(&e, w, templates, hardware, macs)
		if t != nil {
			used[t] = true
		}
		if ok {
			jobs = append(jobs, j)
		}
	}
	e.list = append(e.list, l.renderJobs(ctx, jobs, macs, keep)...)

	for _, t := range s.Templates {
		if !used[t] && t.dataNode != nil && t.parsed != nil && t.parsed.err == nil {
			e.list = append(e.list, l.checkUnrendered(t)...)
		}
	}
	return e.list
}

// CheckIn applies the set-wide rules of Load that concern one object to it
// as a member of s (the fleet as stored, with obj in place of any stored
// object of its kind and name): for hardware, MACs and IPs unique across
// the fleet and a bmcRef that resolves; for a workflow, its references,
// its hardwareMap and its template rendered for it; for a template, its
// text, rendered for every workflow of s that uses it. It is what the API
// checks an object written through it with, so that the API and Git
// refuse the same things. Only mistakes of obj are reported (and, for a
// workflow, of its template rendered for it): a clash among other objects
// is theirs.
//
// s needs only what the rules read: every hardware's interfaces (the MAC
// and IP index), full hardware and templates where they are rendered, and
// the Machines a hardware's bmcRef may name. For a hardware, the only
// other hardware its rules read are those sharing a MAC or IP address with
// it, in the order of the whole set: a caller that indexes the fleet by
// MAC and IP passes those alone, and the check costs the same whatever the
// fleet's size.
func (l *Loader) CheckIn(ctx context.Context, s *Set, obj Object) ErrorList {
	if err := l.init(); err != nil {
		return ErrorList{{Pos: Pos{File: "."}, Message: err.Error()}}
	}
	var e errs
	switch o := obj.(type) {
	case *Hardware:
		// Last, so a clash is reported on it rather than on the object
		// it clashes with.
		fleet := make([]*Hardware, 0, len(s.Hardware)+1)
		for _, h := range s.Hardware {
			if h != o && !sameKey(h, o) {
				fleet = append(fleet, h)
			}
		}
		checkFleet(&e, append(fleet, o), index(s.Machines))
	case *Workflow:
		macs := macIndex(s.Hardware)
		templates := index(s.Templates)
		if t := templates[Key{o.Metadata.Namespace, o.Spec.TemplateRef}]; t != nil && t.parsed == nil {
			// A template from the store: parse its text here.
			e.list = append(e.list, l.checkTemplateText(t)...)
		}
		if _, j, ok := checkRefs(&e, o, templates, index(s.Hardware), macs); ok {
			e.list = append(e.list, l.renderJobs(ctx, []renderJob{j}, macs, false)...)
		}
	case *Template:
		if o.parsed == nil {
			if errs := l.checkTemplateText(o); len(errs) > 0 {
				return errs
			}
		}
		if o.parsed == nil || o.parsed.err != nil {
			return nil
		}
		macs := macIndex(s.Hardware)
		hardware := index(s.Hardware)
		var jobs []renderJob
		for _, w := range s.Workflows {
			if w.Metadata.Namespace != o.Metadata.Namespace || w.Spec.TemplateRef != o.Metadata.Name {
				continue
			}
			var ignored errs // the workflow's own mistakes are not the template's
			if _, j, ok := checkRefs(&ignored, w, map[Key]*Template{{o.Metadata.Namespace, o.Metadata.Name}: o}, hardware, macs); ok {
				jobs = append(jobs, j)
			}
		}
		e.list = append(e.list, l.renderJobs(ctx, jobs, macs, false)...)
	}
	own := obj.GetKind() + "/" + objectName(obj)
	out := e.list[:0]
	for _, x := range e.list {
		if x.Object == own || x.Object == "" || strings.HasPrefix(x.Object, KindTemplate+"/") {
			out = append(out, x)
		}
	}
	return out
}

func sameKey(a, b Object) bool {
	x, y := a.GetMeta(), b.GetMeta()
	return x.Namespace == y.Namespace && x.Name == y.Name
}

// macIndex maps every MAC of the fleet to its hardware.
func macIndex(hardware []*Hardware) map[string]*Hardware {
	macs := make(map[string]*Hardware, len(hardware))
	for _, h := range hardware {
		for _, m := range h.MACs() {
			if _, dup := macs[m]; !dup {
				macs[m] = h
			}
		}
	}
	return macs
}

// checkFleet checks what must hold across the fleet's hardware: MACs and
// IP addresses unique (a later hardware clashing with an earlier one is
// at fault), and every bmcRef naming a declared Machine. It returns the
// MAC index.
func checkFleet(e *errs, hardware []*Hardware, machines map[Key]*Machine) map[string]*Hardware {
	// Paths and positions are formatted only for a duplicate: a fleet has
	// tens of thousands of MACs and IPs, and no duplicates.
	macPath := func(i int) string { return fmt.Sprintf("spec.interfaces[%d].dhcp.mac", i) }
	ipPath := func(i int) string { return fmt.Sprintf("spec.interfaces[%d].dhcp.ip.address", i) }
	type owner struct {
		h *Hardware
		i int // interface
	}
	// where names another hardware's field, with its place in the
	// repository when it has one (hardware from the store has none).
	where := func(o owner, path string) string {
		if pos := o.h.at(path); pos.File != "" {
			return fmt.Sprintf("hardware %s (%s)", objectName(o.h), pos)
		}
		return "hardware " + objectName(o.h)
	}
	macs := make(map[string]*Hardware, len(hardware))
	macAt := make(map[string]owner, len(hardware))
	ips := make(map[string]owner, len(hardware))
	for _, h := range hardware {
		for i, iface := range h.Spec.Interfaces {
			if iface.DHCP == nil {
				continue
			}
			if mac := iface.DHCP.MAC; mac != "" {
				if other, ok := macs[mac]; ok && other != h {
					p := macPath(i)
					e.on(h, h.at(p), p, "MAC %s is already used by %s", mac, where(macAt[mac], macPath(macAt[mac].i)))
				} else if ok {
					p := macPath(i)
					e.on(h, h.at(p), p, "MAC %s appears twice in this hardware (interfaces[%d] has it)", mac, macAt[mac].i)
				} else {
					macs[mac] = h
					macAt[mac] = owner{h, i}
				}
			}
			if ip := iface.DHCP.IP; ip != nil && ip.Address != "" {
				if other, ok := ips[ip.Address]; ok && other.h != h {
					p := ipPath(i)
					e.on(h, h.at(p), p, "IP address %s is already used by %s", ip.Address, where(other, ipPath(other.i)))
				} else if ok {
					p := ipPath(i)
					e.on(h, h.at(p), p, "IP address %s appears twice in this hardware (interfaces[%d] has it)", ip.Address, other.i)
				} else {
					ips[ip.Address] = owner{h, i}
				}
			}
		}
		if ref := h.Spec.BMCRef; ref != nil && ref.Name != "" {
			if _, ok := machines[Key{h.Metadata.Namespace, ref.Name}]; !ok {
				e.on(h, h.at("spec.bmcRef.name"), "spec.bmcRef.name", "bmcRef names Machine %q, which is not declared%s", ref.Name, inNamespace(h.Metadata.Namespace))
			}
		}
	}
	return macs
}

// renderJob is one workflow's template to render for its hardware.
type renderJob struct {
	w  *Workflow
	t  *Template
	hw *Hardware
}

// checkRefs checks a workflow's references: its template and hardware are
// declared, and each hardwareMap value is a MAC of its hardware or, for a
// template whose tasks run on several machines, of another declared
// hardware (macs). It returns the template when declared, and the render
// job when the workflow can be rendered.
func checkRefs(e *errs, w *Workflow, templates map[Key]*Template, hardware map[Key]*Hardware, macs map[string]*Hardware) (*Template, renderJob, bool) {
	ns := w.Metadata.Namespace
	t, tok := templates[Key{ns, w.Spec.TemplateRef}]
	if !tok && w.Spec.TemplateRef != "" {
		e.on(w, w.at("spec.templateRef"), "spec.templateRef", "template %q is not declared%s", w.Spec.TemplateRef, inNamespace(ns))
	}
	hw, hok := hardware[Key{ns, w.Spec.HardwareRef}]
	if !hok && w.Spec.HardwareRef != "" {
		e.on(w, w.at("spec.hardwareRef"), "spec.hardwareRef", "hardware %q is not declared%s", w.Spec.HardwareRef, inNamespace(ns))
	}
	if hok && !hw.invalid {
		keys := make([]string, 0, len(w.Spec.HardwareMap))
		for k := range w.Spec.HardwareMap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		own := false // some value is a MAC of hw itself
		for _, mac := range w.Spec.HardwareMap {
			own = own || hw.HasMAC(mac)
		}
		for _, k := range keys {
			mac := w.Spec.HardwareMap[k]
			if mac == "" || hw.HasMAC(mac) {
				continue
			}
			p := "spec.hardwareMap." + k
			switch other := macs[mac]; {
			case other == nil:
				e.on(w, w.at(p), p, "%s is not a MAC address of hardware %s (it has %s) nor of any other declared hardware", mac, w.Spec.HardwareRef, strings.Join(orNone(hw.MACs()), ", "))
			case !own:
				e.on(w, w.at(p), p, "%s is a MAC address of hardware %s, not of %s (it has %s); other keys may name other machines, whose tasks then run there, but one must name a MAC of the workflow's own hardware",
					mac, objectName(other), w.Spec.HardwareRef, strings.Join(orNone(hw.MACs()), ", "))
			}
		}
	}
	if !tok {
		t = nil
	}
	ok := tok && hok && !hw.invalid && !w.invalid && t.parsed != nil && t.parsed.err == nil
	return t, renderJob{w, t, hw}, ok
}

// renderJobs renders every job's template, or takes the rendering of the
// last Load when none of its inputs changed (see renderCache); identical
// mistakes from one template rendered for many workflows are reported
// once. keep publishes the renderings for the next Load.
func (l *Loader) renderJobs(ctx context.Context, jobs []renderJob, macs map[string]*Hardware, keep bool) ErrorList {
	renders, results := l.renderEach(ctx, jobs, macs)
	if keep && ctx.Err() == nil {
		next := make(map[renderKey]*rendering, len(jobs))
		for i, j := range jobs {
			if k, ok := keyFor(j.w, j.t, j.hw); ok && renders[i] != nil {
				next[k] = renders[i]
			}
		}
		l.renders.publish(next)
	}
	return groupRenderErrors(results, func(i int) string { return objectName(jobs[i].w) })
}

// renderEach renders every job (from the cache where it can), sets each
// workflow's Rendered and returns the renderings and each job's errors.
func (l *Loader) renderEach(ctx context.Context, jobs []renderJob, macs map[string]*Hardware) ([]*rendering, []ErrorList) {
	results := make([]ErrorList, len(jobs))
	renders := make([]*rendering, len(jobs))
	cached := l.renders.current()
	_ = l.parallel(ctx, len(jobs), func(i int) {
		j := jobs[i]
		k, ok := keyFor(j.w, j.t, j.hw)
		r := cached[k]
		if !ok || r == nil {
			r = l.render(ctx, j.t, j.w, j.hw)
		}
		renders[i] = r
		doc, errs := r.finish(macs)
		j.w.Rendered = doc
		for _, x := range errs {
			x.Object = KindTemplate + "/" + objectName(j.t)
		}
		results[i] = errs
	})
	return renders, results
}

func orNone(l []string) []string {
	if len(l) == 0 {
		return []string{"no MAC addresses"}
	}
	return l
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

func index[T Object](l []T) map[Key]T {
	m := make(map[Key]T, len(l))
	for _, o := range l {
		meta := o.GetMeta()
		k := Key{meta.Namespace, meta.Name}
		if _, dup := m[k]; !dup {
			m[k] = o
		}
	}
	return m
}

// checkUnique reports the second and later objects of a kind with the same
// namespace and name, pointing at the first.
func checkUnique[T Object](e *errs, l []T) {
	first := make(map[Key]T, len(l))
	for _, o := range l {
		meta := o.GetMeta()
		k := Key{meta.Namespace, meta.Name}
		if prev, ok := first[k]; ok {
			at := o.Origin()
			if s, ok := any(o).(interface{ at(string) Pos }); ok {
				at = s.at("metadata.name")
			}
			e.on(o, at, "metadata.name", "%s %q is already declared at %s", o.GetKind(), k.String(), prev.Origin())
			continue
		}
		first[k] = o
	}
}

// renderFor renders t for workflow w on hw and checks the result; a task's
// worker must be a key of macs (nil: any worker).
func (l *Loader) renderFor(ctx context.Context, t *Template, w *Workflow, hw *Hardware, macs map[string]*Hardware) (*TemplateDocument, ErrorList) {
	return l.render(ctx, t, w, hw).finish(macs)
}

// render renders t for workflow w on hw and checks the result, all but the
// workers' MACs, which depend on the whole set (rendering.finish).
func (l *Loader) render(ctx context.Context, t *Template, w *Workflow, hw *Hardware) *rendering {
	l.renders.executed.Add(1)
	out, err := l.renderer.Execute(ctx, t.parsed.tmpl, templateData(hw, w.Spec.HardwareMap, t.parsed.readsObject))
	if err != nil {
		if errors.Is(err, errCancelled) {
			// The caller gave up (Load returns its context's error).
			return &rendering{errs: ErrorList{{Pos: t.at("spec.data"), Path: "spec.data", Message: err.Error()}}}
		}
		if errors.Is(err, errRenderTooLarge) {
			return &rendering{errs: ErrorList{{Pos: t.at("spec.data"), Path: "spec.data", Message: err.Error()}}}
		}
		line, col, msg := l.tmplErrs.parse(err)
		return &rendering{errs: ErrorList{{Pos: t.textPos(line, col), Path: "spec.data", Message: "template: " + msg}}}
	}
	doc, root, errs := l.parseDocument(t.Origin().File, out, t.parsed)
	list := l.remapRendered(t, root, errs)
	if doc == nil {
		return &rendering{errs: list}
	}
	for _, ce := range checkDocument(doc, l.images) {
		list = append(list, &Error{Pos: l.renderedPos(t, root, ce.path), Path: "spec.data: " + formatPath(ce.path), Message: ce.msg})
	}
	r := &rendering{doc: doc, errs: list}
	for i, task := range doc.Tasks {
		if task.Worker != "" {
			path := []pathElem{{key: "tasks", index: -1}, {index: i}, {key: "worker", index: -1}}
			r.workers = append(r.workers, workerSpot{mac: task.Worker, pos: l.renderedPos(t, root, path), path: "spec.data: " + formatPath(path)})
		}
	}
	return r
}

// remapRendered moves decoder errors found in rendered output to the
// template's own lines.
func (l *Loader) remapRendered(t *Template, root *yaml.Node, errs ErrorList) ErrorList {
	out := make(ErrorList, 0, len(errs))
	for _, e := range errs {
		path := splitPath(e.Path)
		pos := t.textPos(e.Line, e.Column)
		if t.dataNode != nil && len(path) > 0 {
			if n, _, ok := locate(t.dataNode, path, strings.HasPrefix(e.Message, "unknown field")); ok {
				pos = t.textPos(n.Line, n.Column)
			}
		}
		p := "spec.data"
		if e.Path != "" {
			p += ": " + e.Path
		}
		out = append(out, &Error{Pos: pos, Path: p, Message: e.Message})
	}
	return out
}

// renderedPos finds the template line behind a path of the rendered
// document: the same path in the unrendered template when it parses as
// YAML, else the rendered line.
func (l *Loader) renderedPos(t *Template, root *yaml.Node, path []pathElem) Pos {
	ps := make([]string, len(path))
	for i, p := range path {
		if p.index >= 0 {
			ps[i] = fmt.Sprint(p.index)
		} else {
			ps[i] = p.key
		}
	}
	if t.dataNode != nil {
		if n, _, ok := locate(t.dataNode, ps, false); ok {
			return t.textPos(n.Line, n.Column)
		}
	}
	if root != nil {
		n, _, _ := locate(root, ps, false)
		return t.textPos(n.Line, n.Column)
	}
	return t.at("spec.data")
}

// checkUnrendered checks a template no workflow uses, as far as it can be
// without hardware: its keys, when the text is YAML before rendering.
func (l *Loader) checkUnrendered(t *Template) ErrorList {
	var e errs
	d := &decoder{types: &l.types, file: t.Origin().File, errs: &e, literalStrings: true}
	doc := &TemplateDocument{}
	d.decode(t.dataNode, reflectValueOf(doc), false)
	var out ErrorList
	for _, x := range e.list {
		if strings.HasPrefix(x.Message, "unknown field") || strings.HasPrefix(x.Message, "missing required field") {
			p := "spec.data"
			if x.Path != "" {
				p += ": " + x.Path
			}
			out = append(out, &Error{Pos: t.textPos(x.Line, x.Column), Path: p, Object: KindTemplate + "/" + objectName(t), Message: x.Message})
		}
	}
	return out
}

// groupRenderErrors reports each distinct rendering mistake once, naming
// the workflows it was found for.
func groupRenderErrors(results []ErrorList, name func(i int) string) ErrorList {
	type agg struct {
		e         *Error
		workflows []string
	}
	byKey := map[Error]*agg{}
	var order []Error
	for i, list := range results {
		for _, e := range list {
			k := *e
			a := byKey[k]
			if a == nil {
				a = &agg{e: e}
				byKey[k] = a
				order = append(order, k)
			}
			a.workflows = append(a.workflows, name(i))
		}
	}
	out := make(ErrorList, 0, len(order))
	for _, k := range order {
		a := byKey[k]
		e := *a.e
		switch n := len(a.workflows); n {
		case 1:
			e.Message += fmt.Sprintf(" (rendered for workflow %s)", a.workflows[0])
		default:
			e.Message += fmt.Sprintf(" (rendered for workflow %s and %d more)", a.workflows[0], n-1)
		}
		out = append(out, &e)
	}
	return out
}

// docError is a mistake in a rendered document.
type docError struct {
	path []pathElem
	msg  string
}

// checkDocument applies Tinkerbell's rules to a rendered template, and
// ours: version 0.1; names 1-200 characters; task names unique; action
// names unique within a task; valid image references; positive timeouts;
// each task has a worker (that it is the MAC of a declared hardware is
// checked against the set by rendering.finish).
func checkDocument(doc *TemplateDocument, images *imageGrammar) []docError {
	if over := checkDocumentLimits(doc); len(over) > 0 {
		return over
	}
	var out []docError
	add := func(msg string, path ...pathElem) { out = append(out, docError{path, msg}) }
	key := func(k string) pathElem { return pathElem{key: k, index: -1} }
	idx := func(i int) pathElem { return pathElem{index: i} }
	if doc.Version != "0.1" {
		add(fmt.Sprintf("must be \"0.1\", got %q", doc.Version), key("version"))
	}
	if msg := checkName(doc.Name); msg != "" {
		add(msg, key("name"))
	}
	if doc.GlobalTimeout < 0 {
		add(fmt.Sprintf("must be greater than 0 seconds, got %d", doc.GlobalTimeout), key("global_timeout"))
	}
	if len(doc.Tasks) == 0 {
		add("a template needs at least one task", key("tasks"))
	}
	tasks := map[string]int{}
	for i, task := range doc.Tasks {
		tp := []pathElem{key("tasks"), idx(i)}
		if msg := checkName(task.Name); msg != "" {
			add(msg, append(tp, key("name"))...)
		} else if j, dup := tasks[task.Name]; dup {
			add(fmt.Sprintf("task %q is already declared at tasks[%d]; task names must be unique", task.Name, j), append(tp, key("name"))...)
		} else {
			tasks[task.Name] = i
		}
		if task.Worker == "" {
			add("worker is empty once rendered (is the hardwareMap key set?)", append(tp, key("worker"))...)
		}
		actions := map[string]int{}
		for j, a := range task.Actions {
			ap := append(append([]pathElem{}, tp...), key("actions"), idx(j))
			if msg := checkName(a.Name); msg != "" {
				add(msg, append(ap, key("name"))...)
			} else if k, dup := actions[a.Name]; dup {
				add(fmt.Sprintf("action %q is already declared at actions[%d] of this task; action names must be unique within a task", a.Name, k), append(ap, key("name"))...)
			} else {
				actions[a.Name] = j
			}
			if msg := images.check(a.Image); msg != "" {
				add(msg, append(ap, key("image"))...)
			}
			if a.Timeout <= 0 {
				add(fmt.Sprintf("must be greater than 0 seconds, got %d", a.Timeout), append(ap, key("timeout"))...)
			}
			if a.Retries < 0 || a.Retries > 100 {
				add(fmt.Sprintf("must be between 0 and 100, got %d", a.Retries), append(ap, key("retries"))...)
			}
		}
	}
	return out
}

// checkName applies Tinkerbell's name rule (non-empty) and ours (at most
// 200 characters).
func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len([]rune(s)) > 200:
		return fmt.Sprintf("is %d characters; the limit is 200", len([]rune(s)))
	}
	return ""
}

// validName reports whether s is a Kubernetes object name (DNS subdomain),
// the rule #Name states in CUE.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && ((c != '-' && c != '.') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// splitPath turns a printed path back into CUE-style elements.
func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '.':
			flush()
		case '[':
			flush()
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return out
			}
			out = append(out, p[i+1:i+j])
			i += j
		case '"':
			j := strings.IndexByte(p[i+1:], '"')
			if j < 0 {
				return out
			}
			cur.WriteString(p[i+1 : i+1+j])
			i += j + 1
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// applyDefaults fills what tink.cue's defaults give and objects leave unset.
func applyDefaults(s *Set, cfg *Config) {
	if cfg == nil || cfg.Defaults == nil {
		return
	}
	d := cfg.Defaults
	each := func(m *ObjectMeta) {
		if m.Namespace == "" {
			m.Namespace = d.Namespace
		}
		if len(d.Labels) > 0 {
			labels := make(map[string]string, len(d.Labels)+len(m.Labels))
			for k, v := range d.Labels {
				labels[k] = v
			}
			for k, v := range m.Labels {
				labels[k] = v
			}
			m.Labels = labels
		}
	}
	for _, h := range s.Hardware {
		each(&h.Metadata)
		if b := h.Spec.BMC; b != nil && d.BMC != nil {
			if b.Port == 0 {
				b.Port = d.BMC.Port
			}
			if b.Protocol == "" {
				b.Protocol = d.BMC.Protocol
			}
			if !b.InsecureTLS {
				b.InsecureTLS = d.BMC.InsecureTLS
			}
		}
	}
	for _, t := range s.Templates {
		each(&t.Metadata)
	}
	for _, w := range s.Workflows {
		each(&w.Metadata)
		if w.Spec.BootOptions == nil && d.Workflow != nil && d.Workflow.BootOptions != nil {
			b := *d.Workflow.BootOptions
			w.Spec.BootOptions = &b
		}
	}
	for _, m := range s.Machines {
		each(&m.Metadata)
	}
	for _, ws := range s.WorkflowSets {
		each(&ws.Metadata)
		if ws.Spec.BootOptions == nil && d.Workflow != nil && d.Workflow.BootOptions != nil {
			b := *d.Workflow.BootOptions
			ws.Spec.BootOptions = &b
		}
	}
}

// RenderFor renders the template named tk for the hardware named hk with
// the given hardwareMap (device_1 defaults to the hardware's first MAC), and
// checks the result as Load checks a workflow's. It returns the rendered
// text, what `tink template render` shows an operator before a run.
func (l *Loader) RenderFor(ctx context.Context, s *Set, tk, hk Key, hardwareMap map[string]string) ([]byte, ErrorList) {
	if err := l.init(); err != nil {
		return nil, ErrorList{{Pos: Pos{File: "."}, Message: err.Error()}}
	}
	t, ok := index(s.Templates)[tk]
	if !ok {
		return nil, ErrorList{{Pos: Pos{File: "."}, Message: fmt.Sprintf("template %q is not declared%s", tk.Name, inNamespace(tk.Namespace))}}
	}
	hw, ok := index(s.Hardware)[hk]
	if !ok {
		return nil, ErrorList{{Pos: Pos{File: "."}, Message: fmt.Sprintf("hardware %q is not declared%s", hk.Name, inNamespace(hk.Namespace))}}
	}
	if len(hardwareMap) == 0 {
		if macs := hw.MACs(); len(macs) > 0 {
			hardwareMap = map[string]string{"device_1": macs[0]}
		}
	}
	if t.parsed == nil || t.parsed.err != nil {
		return nil, l.checkTemplateText(t)
	}
	macs := map[string]*Hardware{}
	for _, h := range s.Hardware {
		for _, m := range h.MACs() {
			macs[m] = h
		}
	}
	w := &Workflow{Metadata: ObjectMeta{Name: "(render)"}, Spec: WorkflowSpec{TemplateRef: tk.Name, HardwareRef: hk.Name, HardwareMap: hardwareMap}}
	if _, errs := l.renderFor(ctx, t, w, hw, macs); len(errs) > 0 {
		return nil, errs
	}
	out, err := l.renderer.Execute(ctx, t.parsed.tmpl, templateData(hw, hardwareMap, t.parsed.readsObject))
	if err != nil {
		return nil, ErrorList{{Pos: t.at("spec.data"), Message: err.Error()}}
	}
	return out, nil
}

// ParseTemplate parses the text of a template that came from the store
// (Load parses its own) and reports whether it is ready to render. A
// parsed template is not changed by Render, so it may be kept and
// rendered for many workflows at once; one that is not ready is better
// left to Render, whose errors then name what is wrong with its text.
func (l *Loader) ParseTemplate(t *Template) bool {
	if l.init() != nil {
		return false
	}
	if t.parsed == nil {
		l.checkTemplateText(t)
	}
	return t.parsed != nil && t.parsed.err == nil
}

// Render renders template t for workflow w on hardware hw, as a workflow
// run does when it starts, and checks the result like Load does. known
// reports whether a MAC belongs to a declared hardware (a task's worker
// must); nil accepts hw's own MACs only. Templates that come from the
// store rather than from Load are parsed here.
func (l *Loader) Render(t *Template, w *Workflow, hw *Hardware, known func(mac string) bool) (*TemplateDocument, ErrorList) {
	if err := l.init(); err != nil {
		return nil, ErrorList{{Pos: Pos{File: "."}, Message: err.Error()}}
	}
	if t.parsed == nil {
		if errs := l.checkTemplateText(t); len(errs) > 0 {
			return nil, errs.shorten()
		}
	}
	if t.parsed == nil || t.parsed.err != nil {
		return nil, ErrorList{{Pos: t.at("spec.data"), Message: "template has no text"}}
	}
	macs := map[string]*Hardware{}
	for _, m := range hw.MACs() {
		macs[m] = hw
	}
	if known != nil {
		macs = nil
	}
	// A run's rendering is bounded by the budget's own deadline.
	doc, errs := l.renderFor(context.Background(), t, w, hw, macs)
	if len(errs) > 0 || known == nil {
		return doc, errs
	}
	var out ErrorList
	for i, task := range doc.Tasks {
		if !known(task.Worker) && !hw.HasMAC(task.Worker) {
			out = append(out, &Error{Pos: t.at("spec.data"), Path: fmt.Sprintf("spec.data: tasks[%d].worker", i),
				Message: fmt.Sprintf("worker %q is not the MAC address of any declared hardware", task.Worker)})
		}
	}
	if len(out) > 0 {
		return nil, out
	}
	return doc, nil
}
