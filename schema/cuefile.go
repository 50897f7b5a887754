package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"gopkg.in/yaml.v3"
)

// maxCUEDepth bounds how deep Load looks for objects in a .cue file: an
// object is a struct with apiVersion and kind, at the top or nested in
// plain structs (hardware: "node-01": {...}).
const maxCUEDepth = 4

// loadCUEFile evaluates a .cue file with the definitions in scope (#Hardware
// and the rest resolve without an import) and reads every object in it.
func (l *Loader) loadCUEFile(defs *definitions, name string, b []byte) (res fileResult) {
	if _, err := parser.ParseFile(name, b); err != nil {
		res.errs = append(res.errs, cueFileErrors(name, err)...)
		return res
	}
	v := defs.ctx.CompileBytes(b, cue.Filename(name), cue.Scope(defs.root))
	// An evaluation error inside an object (a conflict with #Hardware) is
	// reported by that object below, with a path relative to it.
	defer func() {
		if err := v.Err(); err != nil && len(res.errs) == 0 {
			res.errs = append(res.errs, defs.msgs.translate(err, cueLocator(name, v))...)
		}
	}()
	var walk func(v cue.Value, depth int)
	walk = func(v cue.Value, depth int) {
		if v.Kind() != cue.StructKind || depth > maxCUEDepth {
			return
		}
		if kind := v.LookupPath(cue.ParsePath("kind")); kind.Exists() {
			l.loadCUEObject(defs, name, v, &res)
			return
		}
		it, err := v.Fields()
		if err != nil {
			return // reported as the file's error
		}
		for it.Next() {
			walk(it.Value(), depth+1)
		}
	}
	walk(v, 0)
	return res
}

// loadCUEObject checks one object value of a .cue file and decodes it. The
// value is exported to a YAML node tree whose positions are the .cue file's,
// so the decoder and the set checks report lines in the .cue file.
func (l *Loader) loadCUEObject(defs *definitions, file string, v cue.Value, res *fileResult) {
	kind, _ := v.LookupPath(cue.ParsePath("kind")).String()
	def, known := defs.byKind[kind]
	var cueErrs ErrorList
	if known {
		if err := v.Unify(def).Validate(cue.Concrete(true)); err != nil {
			cueErrs = defs.msgs.translate(err, cueLocator(file, v))
		}
	}
	if err := v.Validate(cue.Concrete(true)); err != nil {
		// Not concrete: report it here, export would fail anyway.
		if len(cueErrs) == 0 {
			cueErrs = defs.msgs.translate(err, cueLocator(file, v))
		}
		res.errs = append(res.errs, cueErrs...)
		return
	}
	data, err := v.MarshalJSON()
	if err != nil {
		res.errs = append(res.errs, cueFileErrors(file, err)...)
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		res.errs = append(res.errs, &Error{Pos: cuePos(file, v.Pos()), Message: "cannot export object"})
		return
	}
	n := doc.Content[0]
	setCUEPositions(n, v, cuePos(file, v.Pos()))
	res.ignored += stripServerFields(n)
	obj, errs := l.decodeObject(defs, file, nil, n, scalarField(n, "apiVersion"), scalarField(n, "kind"), func() ErrorList { return cueErrs })
	res.errs = append(res.errs, errs...)
	if obj != nil {
		res.objects = append(res.objects, obj)
	}
}

// setCUEPositions gives each node of an exported value the position of the
// CUE field it came from.
func setCUEPositions(n *yaml.Node, v cue.Value, fallback Pos) {
	p := cuePos(fallback.File, v.Pos())
	if p.Line == 0 {
		p = fallback
	}
	n.Line, n.Column = p.Line, p.Column
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			fv := v.LookupPath(cue.MakePath(cue.Str(k.Value)))
			fp := cuePos(fallback.File, fv.Pos())
			if fp.Line == 0 {
				fp = p
			}
			k.Line, k.Column = fp.Line, fp.Column
			setCUEPositions(val, fv, fp)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			setCUEPositions(c, v.LookupPath(cue.MakePath(cue.Index(i))), p)
		}
	}
}

func cuePos(file string, p token.Pos) Pos {
	if !p.IsValid() {
		return Pos{File: file}
	}
	return Pos{File: file, Line: p.Line(), Column: p.Column()}
}

// cueLocator places errors in a .cue file: at the position CUE gives in
// that file, else at the field's own position. Paths are made relative to
// the object (spec.bmc.port, not node02.spec.bmc.port).
func cueLocator(file string, v cue.Value) locator {
	prefix := v.Path().Selectors()
	return func(path []string, key bool, poss []token.Pos) (Pos, string, *yaml.Node) {
		path = relativePath(prefix, path)
		sel := make([]cue.Selector, 0, len(path))
		elems := make([]pathElem, 0, len(path))
		for _, p := range path {
			if i, err := strconv.Atoi(p); err == nil {
				sel = append(sel, cue.Index(i))
				elems = append(elems, pathElem{index: i})
			} else {
				sel = append(sel, cue.Str(p))
				elems = append(elems, pathElem{key: p, index: -1})
			}
		}
		pos := Pos{File: file}
		for _, p := range poss {
			if p.IsValid() && p.Filename() == file {
				pos = cuePos(file, p)
				break
			}
		}
		if pos.Line == 0 {
			pos = cuePos(file, v.Pos())
			for i := len(sel); i >= 0; i-- {
				if fv := v.LookupPath(cue.MakePath(sel[:i]...)); fv.Exists() && fv.Pos().IsValid() && fv.Pos().Filename() == file {
					pos = cuePos(file, fv.Pos())
					break
				}
			}
		}
		return pos, formatPath(elems), &yaml.Node{Line: pos.Line, Column: pos.Column}
	}
}

// relativePath drops the object's own place in the file from a CUE error
// path. When the error was raised for the whole file, the object is found
// by where its fields (apiVersion, kind, metadata, spec) start.
func relativePath(prefix []cue.Selector, path []string) []string {
	if len(prefix) > 0 && len(path) >= len(prefix) {
		for i, s := range prefix {
			if s.String() != path[i] && s.Unquoted() != path[i] {
				return path
			}
		}
		return path[len(prefix):]
	}
	for i, p := range path {
		switch p {
		case "apiVersion", "kind", "metadata", "spec":
			return path[i:]
		}
	}
	return path
}

// cueFileErrors reports errors of a .cue file that are not about one
// object (syntax, references) with CUE's own positions.
func cueFileErrors(file string, err error) ErrorList {
	var out ErrorList
	for _, e := range cueerrors.Errors(err) {
		pos := Pos{File: file}
		for _, p := range cueerrors.Positions(e) {
			if p.Filename() == file || p.Filename() == "" {
				pos = cuePos(file, p)
				break
			}
		}
		format, args := e.Msg()
		path := ""
		if p := e.Path(); len(p) > 0 {
			path = formatPath(elemsOf(p))
		}
		out = append(out, &Error{Pos: pos, Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if len(out) == 0 {
		out = append(out, &Error{Pos: Pos{File: file}, Message: err.Error()})
	}
	return out
}

func elemsOf(p []string) []pathElem {
	out := make([]pathElem, len(p))
	for i, s := range p {
		if n, err := strconv.Atoi(s); err == nil {
			out[i] = pathElem{index: n}
		} else {
			out[i] = pathElem{key: s, index: -1}
		}
	}
	return out
}

// loadConfig reads tink.cue, the repository's defaults, when there is one.
func (l *Loader) loadConfig(fsys fs.FS) (*Config, ErrorList) {
	if _, err := fs.Stat(fsys, ConfigFile); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	b, ferr := readFile(fsys, ConfigFile)
	if ferr != nil {
		return nil, ErrorList{ferr}
	}
	defs := l.borrow()
	defer l.release(defs)
	v := defs.ctx.CompileBytes(b, cue.Filename(ConfigFile), cue.Scope(defs.root))
	if err := v.Err(); err != nil {
		return nil, cueFileErrors(ConfigFile, err)
	}
	if err := v.Unify(defs.config).Validate(cue.Concrete(true)); err != nil {
		return nil, defs.msgs.translate(err, cueLocator(ConfigFile, v))
	}
	data, err := v.MarshalJSON()
	if err != nil {
		return nil, cueFileErrors(ConfigFile, err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, ErrorList{{Pos: Pos{File: ConfigFile}, Message: "cannot read configuration: " + err.Error()}}
	}
	return &cfg, nil
}
