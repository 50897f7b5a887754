package schema

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Limits of what one object may hold. A request body or a file is small
// (1 MiB), but what it declares is not: 60,000 labels in 868 KiB took
// 383 MB to validate, and eight such requests at once would kill a server
// in a 1 GiB pod. Real objects stay far below these limits; an object over
// one is refused, with the field and the limit named, before it is decoded
// or checked against the CUE definitions.
const (
	// MaxObjectNodes bounds the YAML nodes (keys, values, list items) of
	// one object: the memory validation takes grows with it.
	MaxObjectNodes = 20_000
	// MaxEntries bounds any one mapping or list of an object.
	MaxEntries = 1_000
	// MaxLabels and MaxAnnotations bound metadata.labels and
	// metadata.annotations.
	MaxLabels      = 256
	MaxAnnotations = 256
	// MaxInterfaces and MaxDisks bound a Hardware's lists.
	MaxInterfaces = 64
	MaxDisks      = 256
	// MaxHardwareMap bounds a Workflow's hardwareMap.
	MaxHardwareMap = 64
	// Limits of a rendered template document.
	MaxTasks        = 64
	MaxActions      = 256 // per task
	MaxEnvironment  = 256 // entries, per task or action
	MaxVolumes      = 64  // per task or action
	MaxCommandWords = 1_000
)

// fieldLimits are the limits of named fields of a kind, by field path.
func fieldLimits(kind string) map[string]int {
	m := map[string]int{
		"metadata.labels":      MaxLabels,
		"metadata.annotations": MaxAnnotations,
	}
	switch kind {
	case KindHardware:
		m["spec.interfaces"] = MaxInterfaces
		m["spec.disks"] = MaxDisks
	case KindWorkflow:
		m["spec.hardwareMap"] = MaxHardwareMap
	}
	return m
}

// checkLimits walks an object's YAML before anything else looks at it and
// reports the first limit it exceeds; nil when it has none.
func checkLimits(file, kind string, n *yaml.Node) *Error {
	fields := fieldLimits(kind)
	nodes := 0
	// at is where an error points: the key of a mapping's value.
	var walk func(n, at *yaml.Node, path string) *Error
	walk = func(n, at *yaml.Node, path string) *Error {
		nodes++
		if nodes > MaxObjectNodes {
			return &Error{Pos: Pos{File: file, Line: n.Line, Column: n.Column}, Path: path,
				Message: fmt.Sprintf("the object holds more than %d values; split it", MaxObjectNodes)}
		}
		if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			return nil // aliases are bounded by the decoder's own rules
		}
		count := len(n.Content)
		if n.Kind == yaml.MappingNode {
			count /= 2
		}
		limit, named := fields[path]
		if !named {
			limit = MaxEntries
		}
		if count > limit {
			what := "entries"
			if n.Kind == yaml.SequenceNode {
				what = "items"
			}
			return &Error{Pos: Pos{File: file, Line: at.Line, Column: at.Column}, Path: path,
				Message: fmt.Sprintf("%d %s; the limit is %d", count, what, limit)}
		}
		for i, c := range n.Content {
			var p string
			cat := c
			switch {
			case n.Kind == yaml.SequenceNode:
				p = fmt.Sprintf("%s[%d]", path, i)
			case i%2 == 0:
				continue // a key: counted with its value
			default:
				nodes++
				cat = n.Content[i-1]
				p = cat.Value
				if path != "" {
					p = path + "." + p
				}
			}
			if err := walk(c, cat, p); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(n, n, "")
}

// checkDocumentLimits bounds the lists of a rendered template document.
func checkDocumentLimits(doc *TemplateDocument) []docError {
	var out []docError
	key := func(k string) pathElem { return pathElem{key: k, index: -1} }
	idx := func(i int) pathElem { return pathElem{index: i} }
	over := func(n, limit int, what string, path ...pathElem) {
		if n > limit {
			out = append(out, docError{path, fmt.Sprintf("%d %s; the limit is %d", n, what, limit)})
		}
	}
	over(len(doc.Tasks), MaxTasks, "tasks", key("tasks"))
	for i, t := range doc.Tasks {
		tp := []pathElem{key("tasks"), idx(i)}
		over(len(t.Actions), MaxActions, "actions", append(tp, key("actions"))...)
		over(len(t.Environment), MaxEnvironment, "environment entries", append(tp, key("environment"))...)
		over(len(t.Volumes), MaxVolumes, "volumes", append(tp, key("volumes"))...)
		for j, a := range t.Actions {
			ap := append(append([]pathElem{}, tp...), key("actions"), idx(j))
			over(len(a.Environment), MaxEnvironment, "environment entries", append(ap, key("environment"))...)
			over(len(a.Volumes), MaxVolumes, "volumes", append(ap, key("volumes"))...)
			over(len(a.Command), MaxCommandWords, "command words", append(ap, key("command"))...)
		}
	}
	return out
}
