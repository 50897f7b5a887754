package schema

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// setSource records where obj is declared and where the fields that set-wide
// checks report on are.
func setSource(obj Object, pos Pos, n *yaml.Node) {
	var marks spots
	mark := func(p ...string) {
		if node, resolved, ok := locate(n, p, false); ok {
			marks.set(formatPath(resolved), Pos{File: pos.File, Line: node.Line, Column: node.Column})
		}
	}
	mark("metadata", "name")
	switch o := obj.(type) {
	case *Hardware:
		for i := range o.Spec.Interfaces {
			mark("spec", "interfaces", fmt.Sprint(i), "dhcp", "mac")
			mark("spec", "interfaces", fmt.Sprint(i), "dhcp", "ip", "address")
		}
		mark("spec", "bmcRef", "name")
		mark("spec", "bmcRef")
		mark("spec", "bmc", "credentialsRef")
		o.source = source{pos: pos, spots: marks}
	case *Workflow:
		mark("spec", "templateRef")
		mark("spec", "hardwareRef")
		for k := range o.Spec.HardwareMap {
			mark("spec", "hardwareMap", k)
		}
		o.source = source{pos: pos, spots: marks}
	case *Template:
		mark("spec", "data")
		o.source = source{pos: pos, spots: marks}
	case *Machine:
		mark("spec", "connection", "authSecretRef")
		o.source = source{pos: pos, spots: marks}
	case *WorkflowSet:
		mark("spec", "templateRef")
		mark("spec", "hardwareSelector")
		for k := range o.Spec.HardwareMap {
			mark("spec", "hardwareMap", k)
		}
		// The workflows a set owns report their hardware at its selector.
		if p, ok := marks.get("spec.hardwareSelector"); ok {
			marks.set("spec.hardwareRef", p)
		}
		o.source = source{pos: pos, spots: marks}
	}
}

// dataStart finds where a Template's spec.data text begins in the file, so
// template line n maps to a file line.
func dataStart(src []byte, n *yaml.Node) (line, col int) {
	node, _, ok := locate(n, []string{"spec", "data"}, false)
	if !ok {
		return n.Line, n.Column
	}
	if node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return node.Line, node.Column + 1
		}
		return node.Line, node.Column
	}
	// A block scalar's text starts on the next line at its indentation.
	line = node.Line + 1
	lines := bytes.Split(src, []byte("\n"))
	for line-1 < len(lines) && len(bytes.TrimSpace(lines[line-1])) == 0 {
		line++
	}
	col = 1
	if line-1 < len(lines) {
		col = len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " ")) + 1
	}
	return line, col
}
