package schema

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
	"gopkg.in/yaml.v3"
)

// Even one CUE unification per value costs ~15 µs, 80,000 unique values in a
// 10,000-machine fleet (names, MACs, IPs) cost over a second. So the leaf
// check first asks a Go predicate compiled from the constraint's own CUE
// expression (=~, bounds, !=, strings.MinRunes/MaxRunes, net.IP, net.IPv4,
// &, |, basic types). The predicate may only accept: a value it accepts,
// CUE accepts (TestFastAcceptIsSound checks every constraint in the
// definitions against a battery of values). Anything it does not accept,
// and any constraint it cannot compile, goes to CUE, which decides and
// words the error. So CUE stays the only judge of what is wrong.

// fastAccept reports whether a scalar surely satisfies a constraint.
type fastAccept func(n *yaml.Node) bool

// compileFast compiles a constraint, or returns nil when it cannot.
func compileFast(v cue.Value, depth int) fastAccept {
	if depth > 16 {
		return nil
	}
	op, args := v.Expr()
	switch op {
	case cue.NoOp:
		switch fmt.Sprint(v) {
		case "string":
			return isString
		case "int":
			return isInt
		case "bool":
			return func(n *yaml.Node) bool { return n.Tag == "!!bool" }
		case "number":
			return isNumber
		case "null":
			return func(n *yaml.Node) bool { return n.Tag == "!!null" }
		case "_":
			return func(*yaml.Node) bool { return true }
		case "uint":
			return func(n *yaml.Node) bool { x, ok := numberOf(n); return isInt(n) && ok && x >= 0 }
		case "net.IP()", "net.IPv4()":
			return netPredicate(fmt.Sprint(v))
		}
		if v.IsConcrete() {
			switch v.Kind() {
			case cue.StringKind:
				lit, _ := v.String()
				return func(n *yaml.Node) bool { return isString(n) && n.Value == lit }
			case cue.IntKind:
				lit, err := v.Int64()
				if err != nil {
					return nil
				}
				return func(n *yaml.Node) bool {
					var i int64
					return n.Tag == "!!int" && n.Decode(&i) == nil && i == lit
				}
			}
		}
		return nil
	case cue.AndOp, cue.OrOp:
		parts := make([]fastAccept, 0, len(args))
		for _, a := range args {
			p := compileFast(a, depth+1)
			if p == nil {
				return nil
			}
			parts = append(parts, p)
		}
		if op == cue.AndOp {
			return func(n *yaml.Node) bool {
				for _, p := range parts {
					if !p(n) {
						return false
					}
				}
				return true
			}
		}
		return func(n *yaml.Node) bool {
			for _, p := range parts {
				if p(n) {
					return true
				}
			}
			return false
		}
	case cue.RegexMatchOp, cue.NotRegexMatchOp:
		if len(args) != 1 {
			return nil
		}
		s, err := args[0].String()
		if err != nil {
			return nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil
		}
		want := op == cue.RegexMatchOp
		return func(n *yaml.Node) bool { return isString(n) && re.MatchString(n.Value) == want }
	case cue.GreaterThanOp, cue.GreaterThanEqualOp, cue.LessThanOp, cue.LessThanEqualOp:
		if len(args) != 1 {
			return nil
		}
		bound, err := args[0].Float64()
		if err != nil {
			return nil
		}
		return func(n *yaml.Node) bool {
			x, ok := numberOf(n)
			if !ok {
				return false
			}
			switch op {
			case cue.GreaterThanOp:
				return x > bound
			case cue.GreaterThanEqualOp:
				return x >= bound
			case cue.LessThanOp:
				return x < bound
			default:
				return x <= bound
			}
		}
	case cue.NotEqualOp:
		if len(args) != 1 {
			return nil
		}
		if s, err := args[0].String(); err == nil {
			return func(n *yaml.Node) bool { return isString(n) && n.Value != s }
		}
		return nil
	case cue.CallOp:
		if len(args) != 2 {
			return nil
		}
		limit, err := args[1].Int64()
		if err != nil {
			return nil
		}
		switch fmt.Sprint(args[0]) {
		case "strings.MaxRunes":
			return func(n *yaml.Node) bool { return isString(n) && int64(utf8.RuneCountInString(n.Value)) <= limit }
		case "strings.MinRunes":
			return func(n *yaml.Node) bool { return isString(n) && int64(utf8.RuneCountInString(n.Value)) >= limit }
		}
		return nil
	case cue.SelectorOp:
		if p := netPredicate(fmt.Sprint(v)); p != nil {
			return p
		}
		// A reference to another definition (#Name, #Port): compile what
		// it refers to.
		if ref := cue.Dereference(v); ref.Path().String() != v.Path().String() {
			return compileFast(ref, depth+1)
		}
	}
	return nil
}

// netPredicate compiles CUE's net.IP and net.IPv4, which parse with
// netip.ParseAddr.
func netPredicate(name string) fastAccept {
	switch strings.TrimSuffix(name, "()") {
	case "net.IP":
		return func(n *yaml.Node) bool {
			a, err := netip.ParseAddr(n.Value)
			return isString(n) && err == nil && a.IsValid()
		}
	case "net.IPv4":
		return func(n *yaml.Node) bool {
			a, err := netip.ParseAddr(n.Value)
			return isString(n) && err == nil && a.Is4()
		}
	}
	return nil
}

func isString(n *yaml.Node) bool { return n.Tag == "!!str" }

func isInt(n *yaml.Node) bool {
	var i int64
	return n.Tag == "!!int" && n.Decode(&i) == nil
}

func isNumber(n *yaml.Node) bool {
	_, ok := numberOf(n)
	return ok
}

// numberOf reads a number the way scalarToCUE hands it to CUE.
func numberOf(n *yaml.Node) (float64, bool) {
	switch n.Tag {
	case "!!int":
		var i int64
		if n.Decode(&i) != nil {
			return 0, false
		}
		if i > 1<<53 || i < -(1<<53) {
			return 0, false // beyond exact float64: leave it to CUE
		}
		return float64(i), true
	case "!!float":
		var f float64
		if n.Decode(&f) != nil || f != f || f > 1e308 || f < -1e308 {
			return 0, false
		}
		return f, true
	}
	return 0, false
}
