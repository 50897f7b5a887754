package schema

import (
	"embed"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	"gopkg.in/yaml.v3"
)

// definitionFiles holds the CUE definitions; the same file works with the
// stock `cue vet`.
//
//go:embed cue/tink.cue
var definitionFiles embed.FS

// Definitions returns the CUE source of the definitions (#Hardware,
// #Template, #TemplateDocument, #Workflow, #Machine, #Object, #Config), for
// operators who run `cue vet` in their own CI.
func Definitions() []byte {
	b, err := definitionFiles.ReadFile("cue/tink.cue")
	if err != nil {
		panic("schema: embedded definitions missing: " + err.Error()) // a build defect, not input
	}
	return b
}

// definitions is the compiled CUE schema with its own CUE context. It is
// used by one goroutine at a time (see Loader.borrow).
type definitions struct {
	ctx    *cue.Context
	root   cue.Value
	byKind map[string]cue.Value
	config cue.Value
	msgs   *messages
	leaf   *leafChecker
}

func compileDefinitions(msgs *messages, results *leafResults) (*definitions, error) {
	ctx := cuecontext.New()
	root := ctx.CompileBytes(Definitions(), cue.Filename("tink.cue"))
	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("compile schema definitions: %w", err)
	}
	d := &definitions{ctx: ctx, root: root, byKind: map[string]cue.Value{}, msgs: msgs}
	for _, k := range []string{KindHardware, KindTemplate, KindWorkflow, KindMachine, KindWorkflowSet} {
		d.byKind[k] = root.LookupPath(cue.MakePath(cue.Def(k)))
	}
	d.leaf = &leafChecker{d: d, results: results}
	d.config = root.LookupPath(cue.MakePath(cue.Def("Config")))
	for k, v := range d.byKind {
		if !v.Exists() {
			return nil, fmt.Errorf("schema definitions lack #%s", k)
		}
	}
	return d, nil
}

// check validates one YAML document against a definition and returns its
// errors with the document's positions.
func (d *definitions) check(def cue.Value, root *yaml.Node, file string) ErrorList {
	v := d.ctx.BuildExpr(nodeToCUE(root, 0))
	if err := v.Err(); err != nil {
		return ErrorList{{Pos: Pos{File: file, Line: root.Line, Column: root.Column}, Message: "cannot evaluate document: " + firstLine(err.Error())}}
	}
	err := v.Unify(def).Validate(cue.Concrete(true))
	if err == nil {
		return nil
	}
	return d.msgs.translate(err, func(path []string, key bool, _ []token.Pos) (Pos, string, *yaml.Node) {
		n, _, _ := locate(root, path, key)
		return Pos{File: file, Line: n.Line, Column: n.Column}, pathOf(root, path), n
	})
}

// locator maps a CUE path to a position, a printable path and the node
// found there. poss are the positions CUE gives for the error.
type locator func(path []string, key bool, poss []token.Pos) (Pos, string, *yaml.Node)

// messages holds what translating CUE's error messages needs, compiled once.
type messages struct {
	conflict, bound, satisfy *regexp.Regexp
	// patterns turn CUE's regular expressions back into the words an
	// operator uses. TestPatternNames keeps them in step with tink.cue.
	patterns map[string]string
}

func newMessages() *messages {
	return &messages{
		conflict: regexp.MustCompile(`^conflicting values (.+) and (.+?)(?: \(mismatched types .*\))?$`),
		bound:    regexp.MustCompile(`^invalid value (.+) \(out of bound (.+)\)$`),
		satisfy:  regexp.MustCompile(`^invalid value (.+) \(does not satisfy ([^)]+)\)`),
		patterns: patternNames(),
	}
}

func patternNames() map[string]string {
	return map[string]string{
		`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`: "a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
		`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`:   "a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)",
		`^(([0-9][0-9]{0,2}|[1-3][0-9][0-9][0-9]|40([0-8][0-9]|9[0-6]))(,[1-9][0-9]{0,2}|[1-3][0-9][0-9][0-9]|40([0-8][0-9]|9[0-6]))*)$`: "a VLAN ID list (numbers 0-4096, comma separated)",
		`^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)/(3[0-2]|[12]?[0-9])$`:                      "an IPv4 prefix (e.g. 10.0.0.0/8)",
		`^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$`:                                          "an IPv4 address",
		`^https?://`: "an http:// or https:// URL",
		`^[0-9]+%$`:  "a count or a percentage (5 or \"10%\")",
		`(?i)^(ipmitool|asrockrack|gofish|IntelAMT|dell|supermicro|openbmc)$`: "a bmclib provider (ipmitool, asrockrack, gofish, IntelAMT, dell, supermicro, openbmc)",
	}
}

// translateCUE turns CUE's errors into one plain Error per field. CUE says
// `conflicting values "ipmi" and "ipmx"` once per alternative of a
// disjunction and prints regular expressions; operators want `"ipmx" is not
// one of "ipmi", "redfish"` and "is not a MAC address".
func (ms *messages) translate(err error, loc locator) ErrorList {
	return ms.translateIssues(issuesOf(err), loc)
}

// cueIssue is one CUE error reduced to plain data, so results can be cached
// and shared between goroutines that own different CUE contexts.
type cueIssue struct {
	path []string
	msg  string
	poss []token.Pos
}

func issuesOf(err error) []cueIssue {
	var out []cueIssue
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		out = append(out, cueIssue{path: e.Path(), msg: fmt.Sprintf(format, args...), poss: cueerrors.Positions(e)})
	}
	return out
}

func (ms *messages) translateIssues(issues []cueIssue, loc locator) ErrorList {
	type group struct {
		path  []string
		msgs  []string
		poss  []token.Pos
		order int
	}
	groups := map[string]*group{}
	for i, e := range issues {
		key := strings.Join(e.path, "\x00")
		g := groups[key]
		if g == nil {
			g = &group{path: e.path, order: i}
			groups[key] = g
		}
		g.msgs = append(g.msgs, e.msg)
		g.poss = append(g.poss, e.poss...)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return groups[keys[i]].order < groups[keys[j]].order })

	var out ErrorList
	for _, k := range keys {
		g := groups[k]
		var alternatives []string
		var plain []string
		var got string
		for _, m := range g.msgs {
			if strings.Contains(m, "errors in empty disjunction") {
				continue
			}
			if mm := ms.conflict.FindStringSubmatch(m); mm != nil && !strings.Contains(m, "mismatched types") {
				alternatives = append(alternatives, mm[1])
				got = mm[2]
				continue
			}
			plain = append(plain, m)
		}
		switch {
		case len(alternatives) > 1:
			pos, path, _ := loc(g.path, false, g.poss)
			sort.Strings(alternatives)
			out = append(out, &Error{Pos: pos, Path: path, Message: fmt.Sprintf("%s is not one of %s", got, strings.Join(alternatives, ", "))})
		case len(alternatives) == 1:
			pos, path, _ := loc(g.path, false, g.poss)
			out = append(out, &Error{Pos: pos, Path: path, Message: fmt.Sprintf("%s is not allowed here: want %s", got, alternatives[0])})
		}
		plain = dropTypeMismatches(plain)
		seen := map[string]bool{}
		for _, m := range plain {
			e := ms.one(g.path, m, g.poss, loc)
			if e != nil && !seen[e.Message] {
				seen[e.Message] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// dropTypeMismatches leaves out "mismatched types" conflicts when another
// message explains the field: for a value that may be a number or a
// pattern ("5" or "10%"), the pattern's complaint is the one to read.
func dropTypeMismatches(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if !strings.Contains(m, "mismatched types") {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return msgs
	}
	return out
}

func (ms *messages) one(path []string, msg string, poss []token.Pos, loc locator) *Error {
	switch {
	case msg == "field not allowed":
		pos, p, _ := loc(path, true, poss)
		name := ""
		if len(path) > 0 {
			name = path[len(path)-1]
		}
		return &Error{Pos: pos, Path: p, Message: fmt.Sprintf("unknown field %q", name)}
	case msg == "field is required but not present":
		parent := path
		name := ""
		if len(path) > 0 {
			parent, name = path[:len(path)-1], path[len(path)-1]
		}
		pos, p, _ := loc(parent, false, poss)
		_, full, _ := loc(path, false, poss)
		if full != "" {
			p = full
		}
		return &Error{Pos: pos, Path: p, Message: fmt.Sprintf("missing required field %q", name)}
	}
	pos, p, _ := loc(path, false, poss)
	if m := ms.bound.FindStringSubmatch(msg); m != nil {
		return &Error{Pos: pos, Path: p, Message: ms.describeBound(m[1], m[2])}
	}
	if m := ms.satisfy.FindStringSubmatch(msg); m != nil {
		return &Error{Pos: pos, Path: p, Message: describeValidator(m[1], m[2])}
	}
	if strings.HasPrefix(msg, "incomplete value") {
		return &Error{Pos: pos, Path: p, Message: "a value is required here"}
	}
	return &Error{Pos: pos, Path: p, Message: msg}
}

// describeBound explains a failed CUE bound such as >0 or =~"...".
func (ms *messages) describeBound(value, bound string) string {
	switch {
	case strings.HasPrefix(bound, "=~"):
		re, err := strconv.Unquote(bound[2:])
		if err != nil {
			re = bound[2:]
		}
		if name, ok := ms.patterns[re]; ok {
			return fmt.Sprintf("%s is not %s", value, name)
		}
		return fmt.Sprintf("%s does not match %s", value, bound[2:])
	case strings.HasPrefix(bound, "!=\"\"") || bound == `!=""`:
		return "must not be empty"
	case strings.HasPrefix(bound, ">="):
		return fmt.Sprintf("must be at least %s, got %s", bound[2:], value)
	case strings.HasPrefix(bound, "<="):
		return fmt.Sprintf("must be at most %s, got %s", bound[2:], value)
	case strings.HasPrefix(bound, ">"):
		return fmt.Sprintf("must be greater than %s, got %s", bound[1:], value)
	case strings.HasPrefix(bound, "<"):
		return fmt.Sprintf("must be less than %s, got %s", bound[1:], value)
	case strings.HasPrefix(bound, "!="):
		return fmt.Sprintf("must not be %s", bound[2:])
	}
	return fmt.Sprintf("invalid value %s (want %s)", value, bound)
}

// describeValidator explains a failed CUE builtin validator.
func describeValidator(value, validator string) string {
	switch {
	case validator == "net.IP":
		return fmt.Sprintf("%s is not an IP address", value)
	case validator == "net.IPv4":
		return fmt.Sprintf("%s is not an IPv4 address", value)
	case strings.HasPrefix(validator, "strings.MaxRunes("):
		n := strings.TrimSuffix(strings.TrimPrefix(validator, "strings.MaxRunes("), ")")
		return fmt.Sprintf("is longer than %s characters", n)
	case strings.HasPrefix(validator, "strings.MinRunes("):
		return "must not be empty"
	}
	return fmt.Sprintf("%s does not satisfy %s", value, validator)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
