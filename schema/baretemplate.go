package schema

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// looksLikeBareTemplate reports whether a file is a bare Tinkerbell template
// document (version, name, tasks at the top) rather than objects. It is
// decided on the text, because a template's {{ }} need not be valid YAML.
func looksLikeBareTemplate(b []byte) bool {
	hasTasks, hasKind := false, false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("tasks:")):
			hasTasks = true
		case bytes.HasPrefix(line, []byte("kind:")), bytes.HasPrefix(line, []byte("apiVersion:")):
			hasKind = true
		}
	}
	return hasTasks && !hasKind
}

// loadBareTemplate reads a bare template document: the whole file is the
// template text, named by its name field.
func (l *Loader) loadBareTemplate(file string, b []byte) (*Template, ErrorList) {
	var e errs
	text := string(b)
	t := &Template{
		TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindTemplate},
		Spec:     TemplateSpec{Data: &text},
		Bare:     true,
		dataLine: 1,
		dataCol:  1,
	}
	pos := Pos{File: file, Line: 1, Column: 1}
	marks := spots{{"spec.data", pos}}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err == nil && len(root.Content) > 0 && deref(root.Content[0]).Kind == yaml.MappingNode {
		t.dataNode = deref(root.Content[0])
		if nameNode := scalarField(t.dataNode, "name"); nameNode != nil {
			t.Metadata.Name = nameNode.Value
			marks.set("metadata.name", Pos{File: file, Line: nameNode.Line, Column: nameNode.Column})
		}
	} else {
		// Not YAML until rendered: read the name line as text.
		for i, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "name:"); ok {
				v = strings.TrimSpace(v)
				col := strings.Index(line, v) + 1
				t.Metadata.Name = strings.Trim(v, `"'`)
				marks.set("metadata.name", Pos{File: file, Line: i + 1, Column: col})
				break
			}
		}
	}
	t.source = source{pos: pos, spots: marks, id: l.ids.Add(1)}
	if t.Metadata.Name == "" {
		e.add(pos, "name", "a template document needs a name")
		return nil, e.list
	}
	if !validName(t.Metadata.Name) {
		e.add(t.at("metadata.name"), "name", "%q is not a valid template name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)", t.Metadata.Name)
	}
	e.list = append(e.list, l.checkTemplateText(t)...)
	for _, x := range e.list {
		x.Object = KindTemplate + "/" + t.Metadata.Name
	}
	return t, e.list
}

// parsedTemplate caches a template's parse for all the workflows that use it.
type parsedTemplate struct {
	tmpl *Program
	err  error
	// readsObject is false when the text cannot refer to .hardware (the
	// whole object as maps), which then need not be built per render.
	readsObject bool
	// words are the scalars of the template's first clean rendering,
	// immutable once set. One template's renderings for many machines
	// differ in a few values (a MAC, an address) and share the rest: a
	// later rendering takes each scalar found here as this string instead
	// of a string of its own (at 10,000 machines, 4.5 MB of the loader's
	// kept renderings and 3 MB of the engine's runs were such copies).
	words atomic.Pointer[map[string]string]
	// shared are the environments and string lists (volumes, commands)
	// of that same rendering: a later rendering's equal to one of them is
	// made that one, since a rendered document is only ever read (10,000
	// renderings' environments were 12 MB, held by the loader and the
	// engine's runs).
	shared atomic.Pointer[sharedParts]
}

// sharedParts are a rendering's maps and lists that others may share.
type sharedParts struct {
	envs  []map[string]string
	lists [][]string
}

// maxWords bounds a template's words: the scalars of one rendering, which
// the 1 MiB bound on a rendering already limits.
const maxWords = 10_000

// learn sets p's words and shared parts from a clean rendering's node
// tree and document, unless another rendering did first.
func (p *parsedTemplate) learn(root *yaml.Node, doc *TemplateDocument) {
	if p.words.Load() != nil {
		return
	}
	parts := &sharedParts{}
	eachPart(doc, func(env *map[string]string) {
		if *env != nil && !slices.ContainsFunc(parts.envs, func(m map[string]string) bool { return maps.Equal(m, *env) }) {
			parts.envs = append(parts.envs, *env)
		}
	}, func(list *[]string) {
		if *list != nil && !slices.ContainsFunc(parts.lists, func(l []string) bool { return slices.Equal(l, *list) }) {
			parts.lists = append(parts.lists, slices.Clip(*list))
		}
	})
	p.shared.CompareAndSwap(nil, parts)
	words := map[string]string{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || len(words) >= maxWords {
			return
		}
		if n.Kind == yaml.ScalarNode {
			words[n.Value] = n.Value
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	p.words.CompareAndSwap(nil, &words)
}

// share makes doc's environments and lists that equal the shared parts
// p learned those parts.
func (p *parsedTemplate) share(doc *TemplateDocument) {
	parts := p.shared.Load()
	if parts == nil {
		return
	}
	eachPart(doc, func(env *map[string]string) {
		if i := slices.IndexFunc(parts.envs, func(m map[string]string) bool { return maps.Equal(m, *env) }); i >= 0 && *env != nil {
			*env = parts.envs[i]
		}
	}, func(list *[]string) {
		if i := slices.IndexFunc(parts.lists, func(l []string) bool { return slices.Equal(l, *list) }); i >= 0 && *list != nil {
			*list = parts.lists[i]
		}
	})
}

// eachPart calls env with each task's and action's environment and list
// with their volumes and commands.
func eachPart(doc *TemplateDocument, env func(*map[string]string), list func(*[]string)) {
	for i := range doc.Tasks {
		t := &doc.Tasks[i]
		env(&t.Environment)
		list(&t.Volumes)
		for j := range t.Actions {
			a := &t.Actions[j]
			env(&a.Environment)
			list(&a.Volumes)
			list(&a.Command)
		}
	}
}
