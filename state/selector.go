package state

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Operator is how a label requirement compares a label.
type Operator string

// Operators, with Kubernetes' meaning so that `-l` selectors read the same in
// tink as in kubectl.
const (
	// OpEquals: the label is present with this value.
	OpEquals Operator = "="
	// OpNotEquals: the label is absent or has another value.
	OpNotEquals Operator = "!="
	// OpIn: the label is present with one of the values.
	OpIn Operator = "in"
	// OpNotIn: the label is absent or has none of the values.
	OpNotIn Operator = "notin"
	// OpExists: the label is present.
	OpExists Operator = "exists"
	// OpDoesNotExist: the label is absent.
	OpDoesNotExist Operator = "!"
)

// Requirement is one condition of a Selector.
type Requirement struct {
	Key      string
	Operator Operator
	// Values holds one value for OpEquals and OpNotEquals, one or more for
	// OpIn and OpNotIn, none otherwise.
	Values []string
}

// Selector selects objects by label: an object matches when it meets every
// requirement. The zero Selector matches every object.
type Selector []Requirement

// ParseSelector parses a Kubernetes-style label selector:
//
//	rack=r1,env!=prod,gpu,!decommissioned,site in (ams,fra),role notin (spare)
//
// "==" is accepted for "=". An empty string is the zero Selector. Errors are
// EINVALID and quote the offending part.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	for _, part := range splitTopLevel(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, Errorf(EINVALID, "label selector %q: empty requirement", s)
		}
		r, err := parseRequirement(part)
		if err != nil {
			return nil, Errorf(EINVALID, "label selector %q: %q: %s", s, part, err)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// MatchLabels returns the Selector that requires every label in m to have its
// value, the common case of equality-only selection.
func MatchLabels(m map[string]string) Selector {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sel := make(Selector, 0, len(keys))
	for _, k := range keys {
		sel = append(sel, Requirement{Key: k, Operator: OpEquals, Values: []string{m[k]}})
	}
	return sel
}

// Matches reports whether labels meet every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// String renders the selector in the syntax ParseSelector reads.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Matches reports whether labels meet the requirement.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case OpEquals:
		return ok && len(r.Values) == 1 && v == r.Values[0]
	case OpNotEquals:
		return !ok || len(r.Values) != 1 || v != r.Values[0]
	case OpIn:
		return ok && slices.Contains(r.Values, v)
	case OpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}

// String renders the requirement in the syntax ParseSelector reads.
func (r Requirement) String() string {
	switch r.Operator {
	case OpEquals, OpNotEquals:
		v := ""
		if len(r.Values) > 0 {
			v = r.Values[0]
		}
		return r.Key + string(r.Operator) + v
	case OpIn, OpNotIn:
		return r.Key + " " + string(r.Operator) + " (" + strings.Join(r.Values, ",") + ")"
	case OpDoesNotExist:
		return "!" + r.Key
	}
	return r.Key
}

func parseRequirement(p string) (Requirement, error) {
	if rest, ok := strings.CutPrefix(p, "!"); ok && !strings.HasPrefix(rest, "=") {
		key := strings.TrimSpace(rest)
		return Requirement{Key: key, Operator: OpDoesNotExist}, checkLabelKey(key)
	}
	if open := strings.IndexByte(p, '('); open >= 0 {
		if !strings.HasSuffix(p, ")") {
			return Requirement{}, fmt.Errorf("missing ')'")
		}
		head := strings.Fields(p[:open])
		if len(head) != 2 || (head[1] != string(OpIn) && head[1] != string(OpNotIn)) {
			return Requirement{}, fmt.Errorf("expected 'key in (...)' or 'key notin (...)'")
		}
		var values []string
		for _, v := range strings.Split(p[open+1:len(p)-1], ",") {
			v = strings.TrimSpace(v)
			if v == "" {
				return Requirement{}, fmt.Errorf("empty value in set")
			}
			values = append(values, v)
		}
		return Requirement{Key: head[0], Operator: Operator(head[1]), Values: values}, checkLabelKey(head[0])
	}
	for _, op := range []struct {
		tok string
		op  Operator
	}{{"!=", OpNotEquals}, {"==", OpEquals}, {"=", OpEquals}} {
		if i := strings.Index(p, op.tok); i >= 0 {
			key := strings.TrimSpace(p[:i])
			value := strings.TrimSpace(p[i+len(op.tok):])
			if strings.ContainsAny(value, "=!(), \t") {
				return Requirement{}, fmt.Errorf("bad value %q", value)
			}
			return Requirement{Key: key, Operator: op.op, Values: []string{value}}, checkLabelKey(key)
		}
	}
	return Requirement{Key: p, Operator: OpExists}, checkLabelKey(p)
}

func checkLabelKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty label key")
	}
	if strings.ContainsAny(k, "=!(), \t") {
		return fmt.Errorf("bad label key %q", k)
	}
	return nil
}

// splitTopLevel splits s at commas that are not inside parentheses.
func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// SetSelector compiles the hardwareSelector of a WorkflowSet into a matcher
// (what schema.Loader.Selector takes). Unlike a list filter, it refuses
// the empty selector: a set over every machine is never what was meant.
func SetSelector(s string) (func(labels map[string]string) bool, error) {
	sel, err := ParseSelector(s)
	if err != nil {
		return nil, fmt.Errorf("%s", ErrorMessage(err))
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("an empty selector would pick every machine; name the machines (e.g. rack=r7)")
	}
	return sel.Matches, nil
}
