package schema

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
	"gopkg.in/yaml.v3"
)

// Checking each object as one CUE value costs ~0.25 ms (5 s of CPU for a
// 20,000-object fleet), most of it unifying the structure of the definition
// with the structure of the data. The decoder already checks that structure
// against Go types that mirror the definitions field for field
// (TestGoTypesMatchDefinitions keeps them in step): unknown fields, missing
// required fields and types. What is left for CUE is the constraint on each
// value (patterns, bounds, enums, validators such as net.IP), and those only
// depend on the value and the definition at its path. So each scalar is
// unified with its field's constraint alone, and the result is remembered
// per (path, value): a fleet repeats most values (netmasks, gateways,
// "ipmi", arch), and a unique value costs ~10 µs instead of a whole object.
// Constraints between fields (tftp_server_name and boot_file_name) are Go
// checks. TestLeafCheckMatchesFullCheck runs both ways on every broken
// repository in testdata and demands the same errors.

// maxLeafResults bounds the result cache; a server that loads a changing
// repository for months must not grow without end.
const maxLeafResults = 1 << 20

// leafConstraint is the definition's constraint at one normalised path.
type leafConstraint struct {
	key     string // the normalised path
	v       cue.Value
	exists  bool
	trivial bool       // a bare type the decoder has already checked
	fast    fastAccept // nil when the constraint does not compile to Go
}

// leafChecker checks values against the constraints of its definitions; it
// belongs to one definitions value and so to one goroutine at a time.
type leafChecker struct {
	d           *definitions
	constraints map[string]*leafConstraint
	// children finds a constraint's child without building its path or
	// its CUE selectors: a fleet's objects visit the same few hundred
	// paths millions of times.
	children map[childKey]*leafConstraint
	tops     map[string]*leafConstraint // by kind
	results  *leafResults
	noFast   bool // tests: always ask CUE
}

// leafResults remembers what checking a value at a path gave, as plain data
// shared by all goroutines of a Loader.
type leafResults struct {
	m    sync.Map // string -> []cueIssue (nil when valid)
	size atomic.Int64
}

func (r *leafResults) load(key string) ([]cueIssue, bool) {
	v, ok := r.m.Load(key)
	if !ok {
		return nil, false
	}
	return v.([]cueIssue), true
}

func (r *leafResults) store(key string, issues []cueIssue) {
	if r.size.Add(1) > maxLeafResults {
		r.m.Clear()
		r.size.Store(0)
	}
	r.m.Store(key, issues)
}

// constraint returns the definition's constraint at the normalised path key,
// a child of parent reached through sel.
func (lc *leafChecker) constraint(key string, parent *leafConstraint, sels ...cue.Selector) *leafConstraint {
	if c, ok := lc.constraints[key]; ok {
		return c
	}
	c := &leafConstraint{key: key}
	if parent != nil && parent.exists {
		for _, sel := range sels {
			if v := parent.v.LookupPath(cue.MakePath(sel)); v.Exists() {
				c.v, c.exists = v, true
				break
			}
		}
	}
	if c.exists {
		c.trivial = trivialConstraint(fmt.Sprint(c.v))
		if !c.trivial && !lc.noFast {
			c.fast = compileFast(c.v, 0)
		}
	}
	if lc.constraints == nil {
		lc.constraints = map[string]*leafConstraint{}
	}
	lc.constraints[key] = c
	return c
}

// trivialConstraint reports whether a constraint is only a type (string,
// int, string | null ...), which the decoder has checked already.
func trivialConstraint(s string) bool {
	for _, part := range strings.Split(s, "|") {
		switch strings.TrimSpace(part) {
		case "string", "int", "bool", "number", "float", "null", "_":
		default:
			return false
		}
	}
	return true
}

// childKey names a child constraint: a field label, or a list's items.
type childKey struct {
	parent *leafConstraint
	label  string
	items  bool
}

// child returns the constraint of parent's field label (items: of its
// list items), from the cache when it has been looked up before.
func (lc *leafChecker) child(parent *leafConstraint, label string, items bool) *leafConstraint {
	ck := childKey{parent, label, items}
	if c, ok := lc.children[ck]; ok {
		return c
	}
	var c *leafConstraint
	if items {
		c = lc.constraint(parent.key+"[]", parent, cue.AnyIndex)
	} else {
		c = lc.constraint(parent.key+"."+label, parent, cue.Str(label).Optional(), cue.Str(label).Required(), cue.Str(label), cue.AnyString)
	}
	if lc.children == nil {
		lc.children = map[childKey]*leafConstraint{}
	}
	lc.children[ck] = c
	return c
}

// check validates every scalar of the document against its constraint.
func (lc *leafChecker) check(kind string, def cue.Value, root *yaml.Node, file string) ErrorList {
	var out ErrorList
	var path []string
	top := lc.tops[kind]
	if top == nil {
		top = &leafConstraint{key: kind, v: def, exists: true}
		if lc.tops == nil {
			lc.tops = map[string]*leafConstraint{}
		}
		lc.tops[kind] = top
	}
	var walk func(n *yaml.Node, c *leafConstraint, depth int)
	walk = func(n *yaml.Node, c *leafConstraint, depth int) {
		n = deref(n)
		if depth > 100 || !c.exists {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			seen := map[string]bool{}
			visit := func(k, v *yaml.Node) {
				k = deref(k)
				if seen[k.Value] {
					return
				}
				seen[k.Value] = true
				child := lc.child(c, k.Value, false)
				if !child.exists {
					// A pattern key ([string]: X) is normalised so that every
					// label shares one cache entry.
					return
				}
				path = append(path, k.Value)
				walk(v, child, depth+1)
				path = path[:len(path)-1]
			}
			var merges []*yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if deref(n.Content[i]).Tag == "!!merge" {
					merges = append(merges, n.Content[i+1])
					continue
				}
				visit(n.Content[i], n.Content[i+1])
			}
			for _, m := range merges {
				for _, p := range mergeNodePairs(m, 0) {
					visit(p[0], p[1])
				}
			}
		case yaml.SequenceNode:
			child := lc.child(c, "", true)
			for i, item := range n.Content {
				path = append(path, strconv.Itoa(i))
				walk(item, child, depth+1)
				path = path[:len(path)-1]
			}
		case yaml.ScalarNode:
			if c.trivial || (c.fast != nil && c.fast(n)) {
				return
			}
			rk := c.key + "\x00" + n.Tag + "\x00" + n.Value
			issues, ok := lc.results.load(rk)
			if !ok {
				v := lc.d.ctx.BuildExpr(scalarToCUE(n))
				if err := c.v.Unify(v).Validate(cue.Concrete(true)); err != nil {
					issues = issuesOf(err)
					for i := range issues {
						issues[i].poss = nil // positions in the definitions; not needed
					}
				}
				lc.results.store(rk, issues)
			}
			if len(issues) > 0 {
				at := append([]string(nil), path...)
				out = append(out, lc.d.msgs.translateIssues(issues, func(_ []string, isKey bool, _ []token.Pos) (Pos, string, *yaml.Node) {
					// p is the constraint's own path inside the definitions
					// (#BMC.protocol); the value's path is what matters.
					node, _, _ := locate(root, at, isKey)
					return Pos{File: file, Line: node.Line, Column: node.Column}, pathOf(root, at), node
				})...)
			}
		}
	}
	walk(root, top, 0)
	return out
}
