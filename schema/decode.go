package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The decoder below turns a yaml.Node into the Go types of this package. It
// exists because no stock decoder reports every mistake with its line, column
// and field path: yaml.v3 stops at the first type error of a value and gives
// no columns, and CUE hides unknown fields next to value conflicts. Here each
// unknown field, missing required field and wrong type is one Error, and the
// walk goes on.
//
// Field names come from json tags (the Kubernetes convention Tinkerbell's
// types follow). A `tink` tag adds rules:
//
//	tink:"required"  the field must be present (and not null)
//	tink:"literal"   scalars keep their literal YAML text: MODE: 0644 is "0644"

// maxNodes bounds the nodes one document may expand to, so that YAML aliases
// cannot turn a small file into billions of values.
const maxNodes = 1 << 20

// decoder walks one document. It is cheap to create and used by one goroutine.
type decoder struct {
	types *typeInfos
	file  string
	errs  *errs
	path  []pathElem
	nodes int
	// literalStrings accepts any scalar's text for a string field, as
	// yaml.v3 does for Tinkerbell's template documents (version: 0.1 is
	// "0.1"); Kubernetes objects are typed strictly instead.
	literalStrings bool
}

// pathElem is one step of a field path: a field name or a list index.
type pathElem struct {
	key   string
	index int // -1 for a field name
}

// formatPath prints a path as operators read it: spec.interfaces[0].dhcp.mac.
func formatPath(p []pathElem) string {
	var b strings.Builder
	for i, e := range p {
		if e.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if needsQuote(e.key) {
			b.WriteString(strconv.Quote(e.key))
		} else {
			b.WriteString(e.key)
		}
	}
	return b.String()
}

// needsQuote reports whether a map key would be ambiguous in a dotted path.
func needsQuote(k string) bool {
	if k == "" {
		return true
	}
	return strings.ContainsAny(k, ".[]\" ")
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.pos(n), formatPath(d.path), format, args...)
}

func (d *decoder) push(e pathElem) { d.path = append(d.path, e) }
func (d *decoder) pop()            { d.path = d.path[:len(d.path)-1] }

// field describes one struct field for the decoder.
type field struct {
	pos      int // index in structInfo.fields
	name     string
	index    []int
	required bool
	literal  bool
}

// structInfo is the decoder's view of a struct type, computed once per type.
type structInfo struct {
	fields []field
	byName map[string]*field
	names  []string // sorted, for suggestions
}

// typeInfos caches structInfo per type for the life of a Loader; safe for
// concurrent use.
type typeInfos struct {
	m sync.Map // reflect.Type -> *structInfo
}

func (ti *typeInfos) of(t reflect.Type) *structInfo {
	if v, ok := ti.m.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]*field{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			tag := sf.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			if !sf.IsExported() || name == "-" {
				continue
			}
			if opts == "inline" {
				walk(sf.Type, idx)
				continue
			}
			if name == "" {
				name = sf.Name
			}
			tt := sf.Tag.Get("tink")
			si.fields = append(si.fields, field{
				name:     name,
				index:    idx,
				required: strings.Contains(tt, "required"),
				literal:  strings.Contains(tt, "literal"),
			})
		}
	}
	walk(t, nil)
	for i := range si.fields {
		f := &si.fields[i]
		f.pos = i
		si.byName[f.name] = f
		si.names = append(si.names, f.name)
	}
	sort.Strings(si.names)
	v, _ := ti.m.LoadOrStore(t, si)
	return v.(*structInfo)
}

// resolve follows aliases, counting nodes so that alias bombs end in an
// error instead of exhausting memory.
func (d *decoder) resolve(n *yaml.Node) (*yaml.Node, bool) {
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > 100 {
			d.errorf(n, "unresolvable YAML alias %q", n.Value)
			return nil, false
		}
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, "document expands to more than %d values (YAML aliases?)", maxNodes)
	}
	return n, d.nodes < maxNodes
}

// decode fills v from n. literal asks scalars to keep their source text.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, literal bool) {
	n, ok := d.resolve(n)
	if !ok {
		return
	}
	if isNull(n) {
		// null leaves the zero value, as in Kubernetes.
		return
	}
	t := v.Type()
	anyType := reflect.TypeFor[any]()
	if t == reflect.TypeFor[json.RawMessage]() || t == anyType {
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, "%s", cleanYAMLError(err))
			return
		}
		x = normalizeJSON(x)
		if t == anyType {
			v.Set(reflect.ValueOf(x))
			return
		}
		b, err := json.Marshal(x)
		if err != nil {
			d.errorf(n, "cannot be represented as JSON: %v", err)
			return
		}
		v.SetBytes(b)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), literal)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.push(pathElem{index: i})
			d.decode(c, s.Index(i), literal)
			d.pop()
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "must be a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		d.eachPair(n, func(k, val *yaml.Node) {
			d.push(pathElem{key: k.Value, index: -1})
			ev := reflect.New(t.Elem()).Elem()
			d.decode(val, ev, literal)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), ev)
			d.pop()
		})
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "must be a string, got %s", describe(n))
			return
		}
		if !literal && !d.literalStrings && n.Tag != "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			d.errorf(n, "must be a string, got %s (quote it: %s)", describe(n), excerpt(n.Value))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, "must be true or false, got %s", describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.errorf(n, "must be true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := d.integer(n)
		if !ok {
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n, "%s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := d.integer(n)
		if !ok {
			return
		}
		if i < 0 || v.OverflowUint(uint64(i)) {
			d.errorf(n, "%s is out of range", n.Value)
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&f) != nil {
			d.errorf(n, "must be a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, "cannot decode into %s", t)
	}
}

// integer reads an integer scalar; a float with no fraction is accepted
// because JSON tooling writes 600.0 for 600.
func (d *decoder) integer(n *yaml.Node) (int64, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, true
			}
			d.errorf(n, "%s is out of range", n.Value)
			return 0, false
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return int64(f), true
			}
		}
	}
	d.errorf(n, "must be an integer, got %s", describe(n))
	return 0, false
}

// eachPair visits the key/value pairs of a mapping, reporting duplicate keys
// and expanding YAML merge keys (<<) the way Kubernetes tooling does.
func (d *decoder) eachPair(n *yaml.Node, fn func(k, v *yaml.Node)) {
	seen := make(map[string]bool, len(n.Content)/2)
	var merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			var ok bool
			if k, ok = d.resolve(k); !ok {
				return
			}
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, d.mergePairs(val)...)
			continue
		}
		if seen[k.Value] {
			d.push(pathElem{key: k.Value, index: -1})
			d.errorf(k, "duplicate key %q", k.Value)
			d.pop()
			continue
		}
		seen[k.Value] = true
		fn(k, val)
	}
	for _, p := range merged {
		if !seen[p[0].Value] {
			seen[p[0].Value] = true
			fn(p[0], p[1])
		}
	}
}

// mergePairs returns the pairs a merge key brings in.
func (d *decoder) mergePairs(n *yaml.Node) [][2]*yaml.Node {
	n, ok := d.resolve(n)
	if !ok {
		return nil
	}
	var out [][2]*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, d.mergePairs(c)...)
		}
	default:
		d.errorf(n, "a merge key (<<) needs a mapping, got %s", describe(n))
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "must be a mapping, got %s", describe(n))
		return
	}
	si := d.types.of(v.Type())
	var present []bool
	d.eachPair(n, func(k, val *yaml.Node) {
		f := si.byName[k.Value]
		d.push(pathElem{key: k.Value, index: -1})
		defer d.pop()
		if f == nil {
			d.errorf(k, "unknown field %q%s", k.Value, suggest(k.Value, si.names))
			return
		}
		if present == nil {
			present = make([]bool, len(si.fields))
		}
		present[f.pos] = !isNull(val)
		d.decode(val, fieldByIndexAlloc(v, f.index), f.literal)
	})
	for i := range si.fields {
		f := &si.fields[i]
		if f.required && (present == nil || !present[i]) {
			d.push(pathElem{key: f.name, index: -1})
			d.errorf(n, "missing required field %q", f.name)
			d.pop()
		}
	}
}

// fieldByIndexAlloc is reflect.Value.FieldByIndex that allocates embedded
// pointers on the way.
func fieldByIndexAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node holds, for "must be X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!str":
		return "string " + excerpt(n.Value)
	case "!!int", "!!float":
		return "number " + excerpt(n.Value)
	case "!!bool":
		return "boolean " + n.Value
	case "!!null":
		return "null"
	}
	return excerpt(n.Value)
}

// suggest offers the closest known field name for a typo.
func suggest(name string, known []string) string {
	best, bestD := "", 3
	if len(name) <= 3 {
		bestD = 2
	}
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, small inputs only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// normalizeJSON turns yaml.v3's generic values into what encoding/json
// produces, so free-form fields round-trip through the API unchanged.
func normalizeJSON(x any) any {
	switch t := x.(type) {
	case map[string]any:
		for k, v := range t {
			t[k] = normalizeJSON(v)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, v := range t {
			m[fmt.Sprint(k)] = normalizeJSON(v)
		}
		return m
	case []any:
		for i, v := range t {
			t[i] = normalizeJSON(v)
		}
		return t
	}
	return x
}

// cleanYAMLError drops yaml.v3's "yaml: " prefix; the position is printed by
// Error already.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	return s
}

func reflectValueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// yamlErrorLine reads the line out of a yaml.v3 error ("yaml: line 7: ...").
func yamlErrorLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[:j])
	return n
}
