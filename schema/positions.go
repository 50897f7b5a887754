package schema

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// locate finds the node a field path points at in a YAML document, for
// errors found after decoding (CUE constraints, cross-object checks). It
// returns the deepest node that exists, the path elements it resolved (with
// list indexes told apart from keys) and whether the whole path was found;
// an error about a missing field then points at the mapping that lacks it.
// With key true it returns the key node of the last field instead of its
// value (unknown field errors point at the key).
func locate(root *yaml.Node, path []string, key bool) (*yaml.Node, []pathElem, bool) {
	n := root
	var resolved []pathElem
	for i, p := range path {
		n = deref(n)
		switch n.Kind {
		case yaml.MappingNode:
			k, v := findKey(n, p, 0)
			if v == nil {
				return n, resolved, false
			}
			resolved = append(resolved, pathElem{key: p, index: -1})
			if key && i == len(path)-1 {
				return k, resolved, true
			}
			n = v
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(p)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return n, resolved, false
			}
			resolved = append(resolved, pathElem{index: idx})
			n = n.Content[idx]
		default:
			return n, resolved, false
		}
	}
	return deref(n), resolved, true
}

// findKey looks a key up in a mapping, following merge keys.
func findKey(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn := deref(m.Content[i])
		if kn.Tag == "!!merge" {
			merges = append(merges, m.Content[i+1])
			continue
		}
		if kn.Value == key {
			return kn, m.Content[i+1]
		}
	}
	if depth > 20 {
		return nil, nil
	}
	for _, mn := range merges {
		mn = deref(mn)
		switch mn.Kind {
		case yaml.MappingNode:
			if k, v := findKey(mn, key, depth+1); v != nil {
				return k, v
			}
		case yaml.SequenceNode:
			for _, c := range mn.Content {
				if c = deref(c); c.Kind == yaml.MappingNode {
					if k, v := findKey(c, key, depth+1); v != nil {
						return k, v
					}
				}
			}
		}
	}
	return nil, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// pathOf builds the printable path of p against root: CUE paths say "0" for a
// list index, operators read [0].
func pathOf(root *yaml.Node, p []string) string {
	_, resolved, _ := locate(root, p, false)
	rest := p[len(resolved):]
	for _, s := range rest {
		if i, err := strconv.Atoi(s); err == nil {
			resolved = append(resolved, pathElem{index: i})
		} else {
			resolved = append(resolved, pathElem{key: s, index: -1})
		}
	}
	return formatPath(resolved)
}
