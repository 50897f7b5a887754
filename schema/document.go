package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// loadFile reads and validates every object of one file.
func (l *Loader) loadFile(fsys fs.FS, name string) (res fileResult) {
	defer func() {
		// A defect in a dependency must cost one file an error, never the
		// server; the fuzz test hunts for these.
		if r := recover(); r != nil {
			res = fileResult{errs: ErrorList{{Pos: Pos{File: name}, Message: fmt.Sprintf("internal error while reading this file: %v", r)}}}
		}
	}()
	l.parses.Add(1)
	b, ferr := readFile(fsys, name)
	if ferr != nil {
		return fileResult{errs: ErrorList{ferr}}
	}
	defs := l.borrow()
	defer l.release(defs)
	return l.loadBytes(defs, name, b)
}

// loadBytes validates the objects in one file's content.
func (l *Loader) loadBytes(defs *definitions, name string, b []byte) fileResult {
	if strings.EqualFold(path.Ext(name), ".cue") {
		return l.loadCUEFile(defs, name, b)
	}
	if looksLikeBareTemplate(b) {
		t, errs := l.loadBareTemplate(name, b)
		if t == nil {
			return fileResult{errs: errs}
		}
		return fileResult{objects: []Object{t}, errs: errs}
	}
	var res fileResult
	if doc := fastParse(b); doc != nil {
		// The common file: one plain document, read as yaml.v3 would.
		l.loadDocument(defs, name, b, doc.Content[0], &res, true)
		return res
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.errs = append(res.errs, &Error{Pos: Pos{File: name, Line: yamlErrorLine(err), Column: 1}, Message: "invalid YAML: " + cleanYAMLError(err)})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		l.loadDocument(defs, name, b, doc.Content[0], &res, true)
	}
	return res
}

// loadDocument validates one YAML document; a kubectl List is unpacked.
func (l *Loader) loadDocument(defs *definitions, file string, src []byte, n *yaml.Node, res *fileResult, allowList bool) {
	pos := Pos{File: file, Line: n.Line, Column: n.Column}
	n = deref(n)
	if isNull(n) {
		return // an empty document between --- markers
	}
	if n.Kind != yaml.MappingNode {
		res.errs = append(res.errs, &Error{Pos: pos, Message: "a document must be a mapping with apiVersion, kind, metadata and spec, got " + describeDocument(n)})
		return
	}
	apiVersion, kind := scalarField(n, "apiVersion"), scalarField(n, "kind")
	if allowList && kind != nil && kind.Value == "List" {
		_, items := findKey(n, "items", 0)
		if items == nil || deref(items).Kind != yaml.SequenceNode {
			res.errs = append(res.errs, &Error{Pos: pos, Path: "items", Message: "a List needs an items list"})
			return
		}
		for _, it := range deref(items).Content {
			l.loadDocument(defs, file, src, it, res, false)
		}
		return
	}
	res.ignored += stripServerFields(n)
	obj, errs := l.decodeObject(defs, file, src, n, apiVersion, kind, nil)
	res.errs = append(res.errs, errs...)
	if obj != nil {
		res.objects = append(res.objects, obj)
	}
}

// describeDocument names what a document that is not a mapping holds
// without quoting it: a whole file that is one string is what a link to a
// secret, a key or /etc/passwd looks like.
func describeDocument(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("a single value of %d characters", utf8.RuneCountInString(n.Value))
	}
	return describe(n)
}

// metaNode is an object's metadata mapping, or an empty one.
func metaNode(n *yaml.Node) *yaml.Node {
	if _, m := findKey(n, "metadata", 0); m != nil && deref(m).Kind == yaml.MappingNode {
		return deref(m)
	}
	return &yaml.Node{Kind: yaml.MappingNode}
}

func scalarField(m *yaml.Node, key string) *yaml.Node {
	_, v := findKey(m, key, 0)
	if v == nil {
		return nil
	}
	v = deref(v)
	if v.Kind != yaml.ScalarNode {
		return nil
	}
	return v
}

// kindInfo says how to decode one kind.
type kindInfo struct {
	apiVersion string
	newObject  func() Object
}

func kinds() map[string]kindInfo {
	return map[string]kindInfo{
		KindHardware: {APIVersion, func() Object { return &Hardware{} }},
		KindTemplate: {APIVersion, func() Object { return &Template{} }},
		KindWorkflow: {APIVersion, func() Object { return &Workflow{} }},
		KindMachine:  {BMCAPIVersion, func() Object { return &Machine{} }},
		// tinkops' own kind, in its own group.
		KindWorkflowSet: {SetAPIVersion, func() Object { return &WorkflowSet{} }},
	}
}

// decodeObject decodes and validates one object document.
// cueCheck, when set, replaces the CUE check of the YAML document (objects
// from .cue files are checked as CUE values, with their own positions).
func (l *Loader) decodeObject(defs *definitions, file string, src []byte, n *yaml.Node, apiVersion, kind *yaml.Node, cueCheck func() ErrorList) (Object, ErrorList) {
	pos := Pos{File: file, Line: n.Line, Column: n.Column}
	var e errs
	if kind == nil {
		e.add(pos, "kind", "missing kind (want Hardware, Template, Workflow, Machine or WorkflowSet)")
		return nil, e.list
	}
	ks := kinds()
	ki, ok := ks[kind.Value]
	if !ok {
		e.add(Pos{File: file, Line: kind.Line, Column: kind.Column}, "kind", "unknown kind %q%s (want Hardware, Template, Workflow, Machine or WorkflowSet)", kind.Value, suggest(kind.Value, []string{KindHardware, KindTemplate, KindWorkflow, KindMachine, KindWorkflowSet}))
		return nil, e.list
	}
	if apiVersion == nil {
		e.add(pos, "apiVersion", "missing apiVersion (want %s)", ki.apiVersion)
		return nil, e.list
	}
	if apiVersion.Value != ki.apiVersion {
		e.add(Pos{File: file, Line: apiVersion.Line, Column: apiVersion.Column}, "apiVersion", "apiVersion %q is not served for kind %s (want %s)", apiVersion.Value, kind.Value, ki.apiVersion)
		return nil, e.list
	}
	if le := checkLimits(file, kind.Value, n); le != nil {
		le.Object = kind.Value
		if name := scalarField(metaNode(n), "name"); name != nil {
			le.Object += "/" + name.Value
		}
		return nil, ErrorList{le}
	}
	obj := ki.newObject()
	d := &decoder{types: &l.types, file: file, errs: &e}
	d.decode(n, reflectValueOf(obj), false)
	setSource(obj, pos, n)
	sourceOf(obj).id = l.ids.Add(1)
	if o, ok := obj.(*Template); ok {
		o.dataLine, o.dataCol = dataStart(src, n)
	}
	primary := append(e.list, l.checkObject(obj, file, n)...)
	var cueErrs ErrorList
	if cueCheck != nil {
		cueErrs = cueCheck()
	} else {
		def := defs.byKind[kind.Value]
		if l.fullCUE {
			cueErrs = defs.check(def, n, file)
		} else {
			cueErrs = defs.leaf.check(kind.Value, def, n, file)
		}
	}
	list := mergeErrors(primary, cueErrs)
	if len(list) > 0 {
		markInvalid(obj)
	}
	for _, x := range list {
		x.Object = kind.Value + "/" + objectName(obj)
	}
	return obj, list
}

func markInvalid(o Object) {
	switch x := o.(type) {
	case *Hardware:
		x.invalid = true
	case *Template:
		x.invalid = true
	case *Workflow:
		x.invalid = true
	case *Machine:
		x.invalid = true
	case *WorkflowSet:
		x.invalid = true
	}
}

func objectName(o Object) string {
	m := o.GetMeta()
	if m.Namespace != "" {
		return m.Namespace + "/" + m.Name
	}
	return m.Name
}

// mergeErrors keeps every primary error (the decoder's and Go checks') and
// the CUE errors that say something new: CUE repeats unknown fields, wrong
// types and missing fields the decoder has already placed precisely.
func mergeErrors(primary, secondary ErrorList) ErrorList {
	out := append(ErrorList(nil), primary...)
	for _, s := range secondary {
		if !coveredBy(s, primary) {
			out = append(out, s)
		}
	}
	return out
}

// coveredBy reports whether a primary error already speaks for s: same
// field, or a field above it.
func coveredBy(s *Error, primary ErrorList) bool {
	for _, p := range primary {
		switch {
		case p.Path == "":
			if s.Path == "" {
				return true
			}
		case s.Path == p.Path, strings.HasPrefix(s.Path, p.Path+"."), strings.HasPrefix(s.Path, p.Path+"["):
			return true
		}
	}
	return false
}

// serverFields are the metadata fields a Kubernetes API server sets; a
// kubectl dump carries them and Load drops them.
func serverFields() []string {
	return []string{"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "managedFields", "ownerReferences", "finalizers", "selfLink", "generateName"}
}

// stripServerFields removes status, server-set metadata and the
// last-applied-configuration annotation from an object document, returning
// how many fields it removed.
func stripServerFields(n *yaml.Node) int {
	count := removeKeys(n, "status")
	_, meta := findKey(n, "metadata", 0)
	if meta == nil || deref(meta).Kind != yaml.MappingNode {
		return count
	}
	meta = deref(meta)
	count += removeKeys(meta, serverFields()...)
	if _, ann := findKey(meta, "annotations", 0); ann != nil && deref(ann).Kind == yaml.MappingNode {
		count += removeKeys(deref(ann), "kubectl.kubernetes.io/last-applied-configuration")
		if len(deref(ann).Content) == 0 {
			removeKeys(meta, "annotations")
		}
	}
	return count
}

func removeKeys(m *yaml.Node, keys ...string) int {
	removed := 0
	out := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		drop := false
		for _, key := range keys {
			if k.Value == key && k.Kind == yaml.ScalarNode {
				drop = true
			}
		}
		if drop {
			removed++
			continue
		}
		out = append(out, m.Content[i], m.Content[i+1])
	}
	m.Content = out
	return removed
}
