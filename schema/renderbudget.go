package schema

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
	"unsafe"
)

// A template is code an operator (or anyone who can push a template through
// the API, or send one to POST /v1/plan) runs on the server. text/template
// has no limit of its own: three nested `range (until 100000)` loop 10^15
// times without writing a byte, and `$s = print $s $s` doubles a string on
// every step. So every rendering runs under a budget, and running out is a
// positioned error in the template, never a hang:
//
//   - steps: each iteration of a range and each call of a template counts
//     one (the parse tree gets a call to a counting function at the start of
//     every range body and of every template);
//   - work: the bytes that go into and come out of template functions (a
//     function that builds or reads a large value pays for its size), which
//     bounds both the memory a rendering can hold and the CPU it can burn in
//     functions;
//   - depth: templates calling templates;
//   - time: a deadline, and the caller's context (an HTTP request that ends,
//     a sync that times out) stops the rendering at the next step or call;
//   - output: MaxRenderSize.
const (
	// MaxRenderSteps bounds range iterations and template calls.
	MaxRenderSteps = 100_000
	// MaxRenderWork bounds the bytes passed to and returned by functions.
	MaxRenderWork = 16 << 20
	// MaxRenderDepth bounds templates calling templates.
	MaxRenderDepth = 100
	// RenderTimeout bounds one rendering's wall-clock time; the caller's
	// context may end it sooner.
	RenderTimeout = 5 * time.Second
)

// Names of the functions the instrumented tree calls. They are not in the
// parse-time function map, so a template cannot call them itself.
const (
	stepFunc  = "tinkopsStep"
	enterFunc = "tinkopsEnter"
	leaveFunc = "tinkopsLeave"
)

// budget is what one rendering may still spend. It belongs to one runner,
// used by one goroutine at a time.
type budget struct {
	ctx      context.Context
	deadline time.Time
	steps    int64
	work     int64
	depth    int
}

func (b *budget) reset(ctx context.Context) {
	b.ctx = ctx
	// The caller's deadline is its context's to enforce: a rendering it
	// stops is the caller's failure (a sync that timed out), not the
	// template's.
	b.deadline = time.Now().Add(RenderTimeout)
	b.steps, b.work, b.depth = 0, 0, 0
}

// errCancelled marks a rendering stopped by its caller's context: not a
// mistake of the template, so never reported as one.
var errCancelled = errors.New("rendering stopped")

// check stops the rendering when its context ended or its time is up.
func (b *budget) check() error {
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errCancelled, err)
	}
	if time.Now().After(b.deadline) {
		return fmt.Errorf("rendering took longer than its limit of %s", RenderTimeout)
	}
	return nil
}

func (b *budget) step() (string, error) {
	if b.steps++; b.steps > MaxRenderSteps {
		return "", fmt.Errorf("rendering exceeds its budget of %d loop iterations and template calls", MaxRenderSteps)
	}
	return "", b.check()
}

func (b *budget) enter() (string, error) {
	if b.depth++; b.depth > MaxRenderDepth {
		return "", fmt.Errorf("templates call templates more than %d deep", MaxRenderDepth)
	}
	return b.step()
}

func (b *budget) leave() string {
	b.depth--
	return ""
}

// charge pays for values going into or out of a function.
func (b *budget) charge(vals []reflect.Value) error {
	for _, v := range vals {
		b.work += sizeOf(v)
	}
	if b.work > MaxRenderWork {
		return fmt.Errorf("rendering exceeds its budget of %d MiB of data passed through functions", MaxRenderWork>>20)
	}
	return b.check()
}

// sizeOf approximates the bytes a value holds, one level deep (a list of
// strings is charged its elements' headers; the strings were charged when
// a function made them).
func sizeOf(v reflect.Value) int64 {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return 0
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Slice, reflect.Array:
		return int64(v.Len()) * int64(v.Type().Elem().Size())
	case reflect.Map:
		return int64(v.Len()) * 32
	}
	return 0
}

var errorType = reflect.TypeFor[error]()

// metered wraps fn so that each call is charged to b: its arguments before
// it runs, its result after. The wrapper returns an error as its second
// result, which text/template turns into a positioned error.
func metered(fn any, b *budget) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func || t.NumOut() == 0 || t.NumOut() > 2 {
		return fn
	}
	in := make([]reflect.Type, t.NumIn())
	for i := range in {
		in[i] = t.In(i)
	}
	out := t.Out(0)
	wt := reflect.FuncOf(in, []reflect.Type{out, errorType}, t.IsVariadic())
	fail := func(err error) []reflect.Value {
		return []reflect.Value{reflect.Zero(out), reflect.ValueOf(&err).Elem()}
	}
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		if err := b.charge(args); err != nil {
			return fail(err)
		}
		var res []reflect.Value
		if t.IsVariadic() {
			res = v.CallSlice(args)
		} else {
			res = v.Call(args)
		}
		if len(res) == 2 && !res[1].IsNil() {
			return res
		}
		if err := b.charge(res[:1]); err != nil {
			return fail(err)
		}
		return []reflect.Value{res[0], reflect.Zero(errorType)}
	}).Interface()
}

// acyclic wraps a function that writes its later arguments into its first
// (a map) so that it fails instead of making the map reach itself.
func acyclic(name string, fn any) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	in := make([]reflect.Type, t.NumIn())
	for i := range in {
		in[i] = t.In(i)
	}
	out := t.Out(0)
	wt := reflect.FuncOf(in, []reflect.Type{out, errorType}, t.IsVariadic())
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		dst := args[0]
		if dst.Kind() == reflect.Map && !dst.IsNil() {
			seen := map[[2]uintptr]bool{}
			for _, a := range args[1:] {
				if reaches(dst.UnsafePointer(), a, seen) {
					err := fmt.Errorf("%s: the value holds the dict it is put into; a dict cannot contain itself", name)
					return []reflect.Value{reflect.Zero(out), reflect.ValueOf(&err).Elem()}
				}
			}
		}
		var res []reflect.Value
		if t.IsVariadic() {
			res = v.CallSlice(args)
		} else {
			res = v.Call(args)
		}
		if len(res) == 2 {
			return res
		}
		return []reflect.Value{res[0], reflect.Zero(errorType)}
	}).Interface()
}

// reaches reports whether v is, or holds, the map at target. seen keeps
// the maps and lists already looked at, so shared parts are walked once.
func reaches(target unsafe.Pointer, v reflect.Value, seen map[[2]uintptr]bool) bool {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() {
			return false
		}
		if v.UnsafePointer() == target {
			return true
		}
		k := [2]uintptr{uintptr(v.UnsafePointer()), 0}
		if seen[k] {
			return false
		}
		seen[k] = true
		for it := v.MapRange(); it.Next(); {
			if reaches(target, it.Value(), seen) {
				return true
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return false
		}
		k := [2]uintptr{uintptr(v.UnsafePointer()), uintptr(v.Len())}
		if seen[k] {
			return false
		}
		seen[k] = true
		fallthrough
	case reflect.Array:
		for i := range v.Len() {
			if reaches(target, v.Index(i), seen) {
				return true
			}
		}
	}
	return false
}

// MaxRenderValue bounds one value a template function may build. Most
// functions build values no larger than what they are given, which the
// budget has paid for; these can build far more (indent 1000000000 "x",
// replace "" $big $big) and are checked before they run.
const MaxRenderValue = 4 << 20

// sizeEstimates bound, from their arguments, the size of what functions
// that multiply their input build.
func sizeEstimates() map[string]func(a []reflect.Value) int64 {
	indent := func(a []reflect.Value) int64 {
		s := a[1].String()
		return max(a[0].Int(), 0)*int64(strings.Count(s, "\n")+1) + int64(len(s)) + 1
	}
	replace := func(a []reflect.Value) int64 {
		old, nw, src := a[0].String(), a[1].String(), a[2].String()
		return int64(len(src)) + int64(strings.Count(src, old))*int64(len(nw))
	}
	wrapWith := func(a []reflect.Value) int64 {
		l, sep, str := max(a[0].Int(), 1), a[1].String(), a[2].String()
		return int64(len(str)) + (int64(len(str))/l+1)*int64(len(sep))
	}
	regexReplace := func(literal bool) func(a []reflect.Value) int64 {
		return func(a []reflect.Value) int64 {
			re, err := regexp.Compile(a[0].String())
			if err != nil {
				return 0 // the function reports it
			}
			str, repl := a[1].String(), a[2].String()
			matches := re.FindAllStringIndex(str, -1)
			per := int64(len(repl))
			if !literal {
				longest := 0
				for _, m := range matches {
					longest = max(longest, m[1]-m[0])
				}
				per += int64(strings.Count(repl, "$")) * int64(longest)
			}
			return int64(len(str)) + int64(len(matches))*per
		}
	}
	return map[string]func(a []reflect.Value) int64{
		"indent":                     indent,
		"nindent":                    indent,
		"replace":                    replace,
		"wrapWith":                   wrapWith,
		"regexReplaceAll":            regexReplace(false),
		"mustRegexReplaceAll":        regexReplace(false),
		"regexReplaceAllLiteral":     regexReplace(true),
		"mustRegexReplaceAllLiteral": regexReplace(true),
		"printf":                     printfSize,
	}
}

// printfSize bounds what fmt.Sprintf builds: the format, the widths and
// precisions it asks for (fmt caps each at 10^6), and the arguments.
func printfSize(a []reflect.Value) int64 {
	f := a[0].String()
	n := int64(len(f))
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		for i+1 < len(f) && strings.IndexByte("+-# 0", f[i+1]) >= 0 {
			i++
		}
		for i+1 < len(f) && (f[i+1] == '.' || f[i+1] == '*' || f[i+1] >= '0' && f[i+1] <= '9') {
			if f[i+1] == '*' {
				n += 1_000_000
				i++
				continue
			}
			j := i + 1
			for j < len(f) && f[j] >= '0' && f[j] <= '9' {
				j++
			}
			if v, err := strconv.Atoi(f[i+1 : j]); err == nil {
				n += int64(min(v, 1_000_000))
			}
			if j == i+1 {
				j++ // a '.'
			}
			i = j - 1
		}
	}
	if len(a) > 1 {
		rest := a[1]
		for i := range rest.Len() {
			n += sizeOf(rest.Index(i)) + 32
		}
	}
	return n
}

// sized wraps fn so that it fails, rather than runs, when est says its
// result would exceed MaxRenderValue.
func sized(name string, fn any, est func(a []reflect.Value) int64) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	in := make([]reflect.Type, t.NumIn())
	for i := range in {
		in[i] = t.In(i)
	}
	out := t.Out(0)
	wt := reflect.FuncOf(in, []reflect.Type{out, errorType}, t.IsVariadic())
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		if n := est(args); n > MaxRenderValue {
			err := fmt.Errorf("%s would build a value of %d bytes; the limit is %d", name, n, MaxRenderValue)
			return []reflect.Value{reflect.Zero(out), reflect.ValueOf(&err).Elem()}
		}
		var res []reflect.Value
		if t.IsVariadic() {
			res = v.CallSlice(args)
		} else {
			res = v.Call(args)
		}
		if len(res) == 2 {
			return res
		}
		return []reflect.Value{res[0], reflect.Zero(errorType)}
	}).Interface()
}

// Program is a parsed template instrumented for its budget. It is safe for
// concurrent use: each rendering takes a copy of the template whose
// functions are bound to that copy's budget, and copies are reused.
type Program struct {
	tmpl  *template.Template
	funcs template.FuncMap
	// free holds idle runners. Not a sync.Pool: a Load of a large fleet
	// collects garbage hundreds of times, and a pool emptied by each
	// collection cloned the template and wrapped its ~200 functions again
	// (a tenth of the Load's CPU). Bounded, so a burst of parallel runs
	// leaves at most maxIdleRunners behind.
	mu   sync.Mutex
	free []*runner
}

// maxIdleRunners bounds the idle runners a Program keeps.
const maxIdleRunners = 8

type runner struct {
	tmpl *template.Template
	b    budget
}

// newProgram instruments t's set for the render budget; its runners meter
// funcs (the functions t names, Renderer.Parse).
func newProgram(t *template.Template, funcs template.FuncMap) *Program {
	instrumentAll(t)
	return &Program{tmpl: t, funcs: funcs}
}

// instrumentAll instruments every template of t's set (see instrument).
func instrumentAll(t *template.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		root := tt.Tree.Root
		instrument(root)
		nodes := make([]parse.Node, 0, len(root.Nodes)+2)
		nodes = append(nodes, call(enterFunc, root.Pos))
		nodes = append(nodes, root.Nodes...)
		root.Nodes = append(nodes, call(leaveFunc, root.Pos))
	}
}

// calledNames returns the identifiers t's set names as functions (in
// actions, pipelines, branches, ranges and defined templates); ok is false
// when the walk meets a node it does not know.
func calledNames(t *template.Template) (names map[string]bool, ok bool) {
	names = map[string]bool{}
	ok = true
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case nil:
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IdentifierNode:
			names[n.Ident] = true
		case *parse.IfNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.RangeNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.WithNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.TemplateNode:
			walk(n.Pipe)
		case *parse.TextNode, *parse.CommentNode, *parse.DotNode, *parse.FieldNode, *parse.VariableNode,
			*parse.NilNode, *parse.BoolNode, *parse.NumberNode, *parse.StringNode, *parse.BreakNode, *parse.ContinueNode:
		default:
			ok = false
		}
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Tree.Root)
		}
	}
	return names, ok
}

// onlyFuncs returns the functions of funcs that names holds.
func onlyFuncs(funcs template.FuncMap, names map[string]bool) template.FuncMap {
	out := template.FuncMap{}
	for name := range names {
		if fn, ok := funcs[name]; ok {
			out[name] = fn
		}
	}
	return out
}

func walkBranch(b *parse.BranchNode, walk func(parse.Node)) {
	walk(b.Pipe)
	walk(b.List)
	walk(b.ElseList)
}

// instrument adds a step at the start of every range body under l.
func instrument(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.IfNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.WithNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.RangeNode:
			instrument(n.List)
			instrument(n.ElseList)
			if n.List == nil {
				n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
			}
			n.List.Nodes = append([]parse.Node{call(stepFunc, n.Pos)}, n.List.Nodes...)
		}
	}
}

// call is the action {{name}} at pos: errors of the call point there.
func call(name string, pos parse.Pos) *parse.ActionNode {
	id := parse.NewIdentifier(name).SetPos(pos)
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{id}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}}
}

func (p *Program) get() (*runner, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	c, err := p.tmpl.Clone()
	if err != nil {
		return nil, err
	}
	r := &runner{tmpl: c}
	fm := make(template.FuncMap, len(p.funcs)+3)
	for name, fn := range p.funcs {
		fm[name] = metered(fn, &r.b)
	}
	fm[stepFunc] = r.b.step
	fm[enterFunc] = r.b.enter
	fm[leaveFunc] = r.b.leave
	c.Funcs(fm)
	return r, nil
}

// execute renders data into w under a fresh budget.
func (p *Program) execute(ctx context.Context, w *cappedWriter, data any) error {
	r, err := p.get()
	if err != nil {
		return err
	}
	r.b.reset(ctx)
	err = r.tmpl.Execute(w, data)
	r.b.ctx = nil // the runner must not keep a request's context alive
	p.mu.Lock()
	if len(p.free) < maxIdleRunners {
		p.free = append(p.free, r)
	}
	p.mu.Unlock()
	return err
}
