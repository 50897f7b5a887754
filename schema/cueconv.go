package schema

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
	"gopkg.in/yaml.v3"
)

// nodeToCUE turns a YAML document into a CUE expression with the values
// exactly as written, so CUE checks what the operator wrote (an explicit
// `port: 0` stays 0; it is not lost to a Go zero value). It is cheaper than
// CUE's own YAML decoder because the document is parsed once, by yaml.v3.
// Aliases are expanded; the decoder has already bounded their expansion.
func nodeToCUE(n *yaml.Node, depth int) ast.Expr {
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth < 200 {
		n = n.Alias
		depth++
	}
	if depth > 200 {
		return ast.NewNull()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return ast.NewNull()
		}
		return nodeToCUE(n.Content[0], depth+1)
	case yaml.MappingNode:
		s := &ast.StructLit{Elts: make([]ast.Decl, 0, len(n.Content)/2)}
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			for k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Tag == "!!merge" {
				// Merged pairs come after the explicit ones; explicit keys win.
				for _, p := range mergeNodePairs(n.Content[i+1], 0) {
					if !seen[p[0].Value] {
						seen[p[0].Value] = true
						s.Elts = append(s.Elts, &ast.Field{Label: ast.NewStringLabel(p[0].Value), Value: nodeToCUE(p[1], depth+1)})
					}
				}
				continue
			}
			if seen[k.Value] {
				continue // reported by the decoder
			}
			seen[k.Value] = true
			s.Elts = append(s.Elts, &ast.Field{Label: ast.NewStringLabel(k.Value), Value: nodeToCUE(n.Content[i+1], depth+1)})
		}
		return s
	case yaml.SequenceNode:
		l := &ast.ListLit{Elts: make([]ast.Expr, len(n.Content))}
		for i, c := range n.Content {
			l.Elts[i] = nodeToCUE(c, depth+1)
		}
		return l
	case yaml.ScalarNode:
		return scalarToCUE(n)
	}
	return ast.NewNull()
}

func mergeNodePairs(n *yaml.Node, depth int) [][2]*yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth < 200 {
		n = n.Alias
		depth++
	}
	var out [][2]*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
	case yaml.SequenceNode:
		if depth < 200 {
			for _, c := range n.Content {
				out = append(out, mergeNodePairs(c, depth+1)...)
			}
		}
	}
	return out
}

func scalarToCUE(n *yaml.Node) ast.Expr {
	switch n.Tag {
	case "!!null":
		return ast.NewNull()
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return ast.NewBool(b)
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return ast.NewLit(token.INT, strconv.FormatInt(i, 10))
		}
		var u uint64
		if n.Decode(&u) == nil {
			return ast.NewLit(token.INT, strconv.FormatUint(u, 10))
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if f != f || f > 1e308 || f < -1e308 {
				break // NaN and infinities have no CUE literal; keep the text
			}
			if !strings.ContainsAny(s, ".eE") {
				s += ".0"
			}
			return ast.NewLit(token.FLOAT, s)
		}
	}
	return ast.NewString(n.Value)
}
