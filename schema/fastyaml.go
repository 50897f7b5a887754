package schema

import (
	"bytes"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3's parser (a port of libyaml: scanner, tokens, events, then
// nodes) was half the CPU of loading a 20,000-object fleet: ~1.2 s for the
// objects and the rendered templates. Nearly every file of a fleet uses a
// small part of YAML: one document of block mappings and sequences, plain
// or simply quoted scalars, a one-line flow list and literal block text.
// fastParse reads exactly that part, building the very tree yaml.v3 builds
// (kinds, tags, styles, values, lines and columns), and gives up (nil)
// at anything else: comments, anchors, tags, escapes, multi-line scalars,
// several documents, tabs, non-ASCII text, any doubt. The caller then asks
// yaml.v3, which decides and words every error; fastParse never reports
// one. So it only may accept: what it accepts, yaml.v3 accepts with the
// same tree (TestFastYAMLMatchesYAMLv3 and FuzzFastYAML check it).
// Comments are the one thing it does not keep, and it gives up on them.

// fastMaxDepth bounds nesting; deeper documents go to yaml.v3.
const fastMaxDepth = 64

// fastMaxKey is below libyaml's 1024-character limit on a simple key.
const fastMaxKey = 1000

// fastYAML is the state of one fastParse.
type fastYAML struct {
	src   []byte
	lines []fastLine
	i     int         // next line
	slab  []yaml.Node // nodes are taken from here, a few allocations per file
	// words are strings to take rather than copy (parsedTemplate.words).
	words map[string]string
}

// node returns a new node holding n.
func (p *fastYAML) node(n yaml.Node) *yaml.Node {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]yaml.Node, 0, 32)
	}
	p.slab = append(p.slab, n)
	return &p.slab[len(p.slab)-1]
}

// s returns part of the input as a string: the one in words when it is
// there, else a string of its own. (One string of the whole input, shared
// by its values, saved no measurable time and would keep whole files alive
// in the objects decoded from them.)
func (p *fastYAML) s(b []byte) string {
	if w, ok := p.words[string(b)]; ok {
		return w
	}
	return string(b)
}

// fastLine is one line of the input: its text without the line break,
// its indentation and whether it holds only spaces.
type fastLine struct {
	text   []byte
	indent int
	blank  bool
}

// fastParse parses src as one YAML document, or returns nil when it cannot
// be sure to read it as yaml.v3 does.
func fastParse(src []byte) *yaml.Node { return fastParseWords(src, nil) }

// fastParseWords is fastParse taking each scalar that is a key of words
// as words' string.
func fastParseWords(src []byte, words map[string]string) *yaml.Node {
	if len(src) == 0 || src[len(src)-1] != '\n' {
		return nil
	}
	p := &fastYAML{src: src, words: words}
	if !p.split() {
		return nil
	}
	// Most lines make two nodes (a key and its value): one allocation
	// for a whole file, more only for denser ones.
	p.slab = make([]yaml.Node, 0, 2*len(p.lines)+2)
	p.skipBlank()
	if p.i >= len(p.lines) {
		return nil
	}
	first := p.lines[p.i]
	if first.indent != 0 {
		return nil
	}
	root := p.mapping(0, 0, false)
	if root == nil {
		return nil
	}
	p.skipBlank()
	if p.i != len(p.lines) {
		return nil
	}
	return p.node(yaml.Node{Kind: yaml.DocumentNode, Line: root.Line, Column: root.Column, Content: []*yaml.Node{root}})
}

// split cuts the input into lines, refusing bytes fastParse does not
// handle (tabs, carriage returns, control and non-ASCII characters) and
// document markers.
func (p *fastYAML) split() bool {
	src := p.src
	p.lines = make([]fastLine, 0, bytes.Count(src, []byte{'\n'}))
	for len(src) > 0 {
		j := bytes.IndexByte(src, '\n')
		text := src[:j]
		src = src[j+1:]
		indent := 0
		for indent < len(text) && text[indent] == ' ' {
			indent++
		}
		for _, c := range text {
			if c < 0x20 || c >= 0x7f {
				return false
			}
		}
		if len(text) >= 3 && (string(text[:3]) == "---" || string(text[:3]) == "...") {
			return false
		}
		p.lines = append(p.lines, fastLine{text: text, indent: indent, blank: indent == len(text)})
	}
	return true
}

// skipBlank moves past lines holding nothing. A line of spaces only is
// refused inside block text (see literal), so here it is empty.
func (p *fastYAML) skipBlank() {
	for p.i < len(p.lines) && p.lines[p.i].blank {
		p.i++
	}
}

// next returns the next line holding something, without consuming it.
func (p *fastYAML) next() (fastLine, bool) {
	p.skipBlank()
	if p.i >= len(p.lines) {
		return fastLine{}, false
	}
	return p.lines[p.i], true
}

// mapping reads a block mapping whose keys are at column indent+1; the
// first key is on the current line at that column (for "- key: v" the
// line is the sequence entry's, its text starting at the key).
func (p *fastYAML) mapping(indent, depth int, inline bool) *yaml.Node {
	if depth > fastMaxDepth {
		return nil
	}
	var n *yaml.Node
	for {
		if !inline {
			l, ok := p.next()
			if !ok || l.indent < indent {
				break
			}
			if l.indent != indent {
				return nil
			}
			if l.text[indent] == '-' && (len(l.text) == indent+1 || l.text[indent+1] == ' ') {
				break // a sequence entry: the parent's
			}
		}
		inline = false
		k, v := p.entry(indent, depth)
		if k == nil {
			return nil
		}
		if n == nil {
			n = p.node(yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: k.Line, Column: k.Column})
		}
		n.Content = append(n.Content, k, v)
	}
	return n
}

// entry reads one "key: value" at column indent+1 of the current line,
// and the block nested under it.
func (p *fastYAML) entry(indent, depth int) (k, v *yaml.Node) {
	l := p.lines[p.i]
	line := p.i + 1
	text := l.text
	end := -1
	for j := indent; j < len(text); j++ {
		if text[j] == ':' && (j+1 == len(text) || text[j+1] == ' ') {
			end = j
			break
		}
	}
	if end <= indent || end-indent > fastMaxKey || text[end-1] == ' ' {
		return nil, nil
	}
	key := text[indent:end]
	if !plainStart(key) || !plainBody(key) {
		return nil, nil
	}
	k = p.plainNode(p.s(key), line, indent+1)
	if k == nil {
		return nil, nil
	}
	rest := end + 1
	for rest < len(text) && text[rest] == ' ' {
		rest++
	}
	p.i++
	if rest == len(text) {
		// The value is the block below: deeper, or a sequence at the
		// key's own column.
		nl, ok := p.next()
		if !ok {
			return nil, nil
		}
		switch {
		case nl.indent > indent:
			if nl.text[nl.indent] == '-' && (len(nl.text) == nl.indent+1 || nl.text[nl.indent+1] == ' ') {
				v = p.sequence(nl.indent, depth+1)
			} else {
				v = p.mapping(nl.indent, depth+1, false)
			}
		case nl.indent == indent && nl.text[indent] == '-' && len(nl.text) > indent+1 && nl.text[indent+1] == ' ':
			v = p.sequence(indent, depth+1)
		default:
			return nil, nil // an empty value: null, positioned by libyaml's rules
		}
		if v == nil {
			return nil, nil
		}
		return k, v
	}
	v = p.inlineValue(text, rest, line, indent, depth)
	if v == nil {
		return nil, nil
	}
	return k, v
}

// inlineValue reads the value starting at text[at] on the line just read:
// a scalar, a flow list, or literal block text on the lines below. indent
// is the column of the mapping holding it.
func (p *fastYAML) inlineValue(text []byte, at, line, indent, depth int) *yaml.Node {
	val := text[at:]
	col := at + 1
	switch val[0] {
	case '"', '\'':
		q := val[0]
		j := bytes.IndexByte(val[1:], q)
		if j < 0 || !onlySpaces(val[j+2:]) {
			return nil
		}
		s := val[1 : j+1]
		if q == '"' && bytes.IndexByte(s, '\\') >= 0 {
			return nil
		}
		style := yaml.DoubleQuotedStyle
		if q == '\'' {
			style = yaml.SingleQuotedStyle
		}
		if !p.endsScalar(indent) {
			return nil
		}
		return p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: style, Value: p.s(s), Line: line, Column: col})
	case '[':
		if depth+1 > fastMaxDepth || !p.endsScalar(indent) {
			return nil
		}
		return p.flowList(val, line, col)
	case '|':
		return p.literal(val, line, col, indent)
	}
	val = trimRightSpaces(val)
	if !plainStart(val) || !plainBody(val) || val[len(val)-1] == ':' || !p.endsScalar(indent) {
		return nil
	}
	return p.plainNode(p.s(val), line, col)
}

// endsScalar reports whether a one-line scalar value of a mapping at
// indent ends on its line: a deeper line next would continue it.
func (p *fastYAML) endsScalar(indent int) bool {
	l, ok := p.next()
	return !ok || l.indent <= indent
}

// sequence reads a block sequence whose dashes are at column indent+1.
func (p *fastYAML) sequence(indent, depth int) *yaml.Node {
	if depth > fastMaxDepth {
		return nil
	}
	var n *yaml.Node
	for {
		l, ok := p.next()
		if !ok || l.indent < indent {
			break
		}
		if l.indent != indent {
			return nil
		}
		text := l.text
		if text[indent] != '-' {
			break // the parent mapping's next key
		}
		if len(text) < indent+3 || text[indent+1] != ' ' || text[indent+2] == ' ' {
			return nil
		}
		line := p.i + 1
		if n == nil {
			n = p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line, Column: indent + 1})
		}
		at := indent + 2
		var item *yaml.Node
		if hasMappingColon(text[at:]) {
			// "- key: value": a mapping whose keys are at column at+1;
			// its first line is this one.
			item = p.mapping(at, depth+1, true)
		} else {
			switch text[at] {
			case '"', '\'', '[':
				p.i++
				item = p.inlineValue(text, at, line, indent, depth)
			default:
				val := trimRightSpaces(text[at:])
				if !plainStart(val) || !plainBody(val) || val[len(val)-1] == ':' {
					return nil
				}
				p.i++
				if !p.endsScalar(indent) {
					return nil
				}
				item = p.plainNode(p.s(val), line, at+1)
			}
		}
		if item == nil {
			return nil
		}
		n.Content = append(n.Content, item)
	}
	return n
}

// hasMappingColon reports whether a line's rest holds ": " or ends in ':'
// outside quotes: then it starts a mapping.
func hasMappingColon(s []byte) bool {
	if len(s) > 0 && (s[0] == '"' || s[0] == '\'') {
		return false // a quoted scalar; a quoted key is given up on later
	}
	for j := 0; j < len(s); j++ {
		if s[j] == ':' && (j+1 == len(s) || s[j+1] == ' ') {
			return true
		}
	}
	return false
}

// literal reads block text ("|" or "|-") whose lines follow, below a
// mapping at indent.
func (p *fastYAML) literal(head []byte, line, col, indent int) *yaml.Node {
	head = trimRightSpaces(head)
	strip := false
	switch string(head) {
	case "|":
	case "|-":
		strip = true
	default:
		return nil // keep (+), explicit indentation, a comment
	}
	if p.i >= len(p.lines) {
		return nil
	}
	first := p.lines[p.i]
	if first.blank || first.indent <= indent {
		return nil // leading empty lines, or no text: libyaml's finer rules
	}
	m := first.indent
	var b []byte
	lastText := p.i
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if len(l.text) == 0 {
			p.i++
			continue
		}
		if l.blank {
			return nil // spaces only: their part past the indentation is text
		}
		if l.indent < m {
			break
		}
		for j := lastText + 1; j < p.i; j++ {
			b = append(b, '\n') // the empty lines between
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, l.text[m:]...)
		lastText = p.i
		p.i++
	}
	// Trailing empty lines are not part of the text; with clipping one line
	// break ends it. Leave them to the caller as blank lines.
	p.i = lastText + 1
	if next, ok := p.next(); ok && next.indent > indent {
		return nil // text shallower than its first line but deeper than the key
	}
	if !strip {
		b = append(b, '\n')
	}
	return p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.LiteralStyle, Value: string(b), Line: line, Column: col})
}

// flowList reads a one-line flow sequence of simple plain scalars:
// [a, b]. Nothing but spaces may follow it.
func (p *fastYAML) flowList(val []byte, line, col int) *yaml.Node {
	end := bytes.IndexByte(val, ']')
	if end < 0 || !onlySpaces(val[end+1:]) {
		return nil
	}
	n := p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Line: line, Column: col})
	inner := val[1:end]
	if onlySpaces(inner) {
		if len(inner) > 0 {
			return nil
		}
		return n
	}
	off := 1
	for {
		j := bytes.IndexByte(inner, ',')
		item := inner
		if j >= 0 {
			item = inner[:j]
		}
		lead := 0
		for lead < len(item) && item[lead] == ' ' {
			lead++
		}
		s := trimRightSpaces(item[lead:])
		if len(s) == 0 || !flowItem(s) {
			return nil
		}
		c := p.plainNode(p.s(s), line, col+off+lead)
		if c == nil {
			return nil
		}
		n.Content = append(n.Content, c)
		if j < 0 {
			break
		}
		inner = inner[j+1:]
		off += j + 1
	}
	return n
}

// flowItem reports whether s is a plain scalar fastParse reads inside a
// flow list: letters, digits and . _ / - only, not starting with -.
func flowItem(s []byte) bool {
	if s[0] == '-' {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// plainStart reports whether s may start a plain scalar as fastParse reads
// it: not with an indicator (YAML's - ? : , [ ] { } # & * ! | > ' " % @ `),
// except - before a non-space (a negative number, a path).
func plainStart(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	switch s[0] {
	case '-':
		return len(s) > 1 && s[1] != ' '
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ':
		return false
	}
	return true
}

// plainBody reports whether s holds nothing that would end or change a
// one-line plain scalar: ": " (a nested mapping, an error) or '#'
// (a comment after a space; given up on everywhere).
func plainBody(s []byte) bool {
	for j, c := range s {
		if c == '#' || (c == ':' && j+1 < len(s) && s[j+1] == ' ') {
			return false
		}
	}
	return true
}

// plainNode builds a plain scalar node with the tag yaml.v3 resolves for
// it; nil for a merge key (<<), which yaml.v3 treats apart.
func (p *fastYAML) plainNode(s string, line, col int) *yaml.Node {
	if s == "<<" {
		return nil
	}
	n := p.node(yaml.Node{Kind: yaml.ScalarNode, Value: s, Line: line, Column: col})
	if plainIsString(s) {
		n.Tag = "!!str"
	} else {
		n.Tag = n.ShortTag() // yaml.v3's own resolution of an untagged plain scalar
	}
	return n
}

// plainIsString reports the plain scalars yaml.v3 surely resolves to
// strings, saving its resolver's parse attempts for the common ones: its
// resolver tries other types only for a first character among
// +-0123456789.~yYnNtTfFoO, and of those names only the spellings of
// true, false and null; a dotted quad is no number, and a colon without a
// dash (every timestamp has one) no number nor timestamp.
func plainIsString(s string) bool {
	switch c := s[0]; {
	case c == '+' || c == '-' || c == '.' || c == '~' || (c >= '0' && c <= '9'):
	case strings.IndexByte("yYnNtTfFoO", c) >= 0:
		switch s {
		case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL":
			return false
		}
		return true
	default:
		return true
	}
	if c := s[0]; c < '0' || c > '9' {
		return false
	}
	dots := 0
	digitsDots := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			dots++
		case c >= '0' && c <= '9':
		default:
			digitsDots = false
		}
	}
	if digitsDots {
		return dots >= 2
	}
	return strings.IndexByte(s, ':') >= 0 && strings.IndexByte(s, '-') < 0
}

func onlySpaces(s []byte) bool {
	for _, c := range s {
		if c != ' ' {
			return false
		}
	}
	return true
}

func trimRightSpaces(s []byte) []byte {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}
