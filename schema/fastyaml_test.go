package schema

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/schema/schematest"
)

// slowParse is what loadBytes and parseDocument did before fastParse: the
// first document of src as yaml.v3 decodes it, and whether src holds
// exactly one document and no error.
func slowParse(src []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, false
	}
	return &doc, true
}

// nodeDiff names the first difference between two trees, "" when equal in
// every field yaml.Node has.
func nodeDiff(path string, a, b *yaml.Node) string {
	if (a == nil) != (b == nil) {
		return fmt.Sprintf("%s: one is nil (%v, %v)", path, a, b)
	}
	if a == nil {
		return ""
	}
	type flat struct {
		Kind                                               yaml.Kind
		Style                                              yaml.Style
		Tag, Value, Anchor, HeadComment, LineComment, Foot string
		Line, Column                                       int
		Alias                                              bool
		N                                                  int
	}
	fa := flat{a.Kind, a.Style, a.Tag, a.Value, a.Anchor, a.HeadComment, a.LineComment, a.FootComment, a.Line, a.Column, a.Alias != nil, len(a.Content)}
	fb := flat{b.Kind, b.Style, b.Tag, b.Value, b.Anchor, b.HeadComment, b.LineComment, b.FootComment, b.Line, b.Column, b.Alias != nil, len(b.Content)}
	if fa != fb {
		return fmt.Sprintf("%s: fast %+v, yaml.v3 %+v", path, fa, fb)
	}
	for i := range a.Content {
		if d := nodeDiff(fmt.Sprintf("%s/%d", path, i), a.Content[i], b.Content[i]); d != "" {
			return d
		}
	}
	return ""
}

// checkFastYAML fails when fastParse accepts src and yaml.v3 rejects it or
// builds another tree; it returns whether fastParse accepted.
func checkFastYAML(t *testing.T, name string, src []byte) bool {
	t.Helper()
	fast := fastParse(src)
	if fast == nil {
		return false
	}
	slow, ok := slowParse(src)
	if !ok {
		t.Errorf("%s: fastParse accepts what yaml.v3 refuses:\n%s", name, src)
		return true
	}
	if d := nodeDiff("", fast, slow); d != "" {
		t.Errorf("%s: trees differ: %s\n%s", name, d, src)
	}
	return true
}

// fastYAMLCases are documents in and just outside what fastParse reads.
func fastYAMLCases() []string {
	return []string{
		"a: b\n", "a: 1\nb: 1.5\nc: true\nd: null\ne: ~\nf: 0x10\ng: 2001-01-01\nh: 1e3\ni: .inf\nj: -1\nk: 0644\nl: yes\nm: False\n",
		"a:\n  b: c\n  d:\n    e: f\n", "a:\n- b\n- c\nd: e\n", "a:\n  - b: c\n    d: e\n  - f\n", "- a\n- b\n",
		"a: [1.1.1.1, 8.8.8.8]\n", "a: []\n", "a: [ ]\n", "a: [a,]\n", "a: [ x ,y ]\n", "a: [a, [b]]\n", "a: [a] b\n",
		"a: \"x y\"\n", "a: 'x'\n", "a: 'it''s'\n", "a: \"a\\nb\"\n", "a: \"x\" y\n", "a: \"x\n  y\"\n", "a: \"{{.device_1}}\"\n",
		"a: |\n  x\n  y\n", "a: |-\n  x\n\n  y\n\n\nb: c\n", "a: |+\n  x\n\n", "a: |2\n   x\n", "a: |\n\n  x\n", "a: |\n  x\n   y\n  z\n",
		"a: |\n    x\n  y\n", "a: |\n  x\n  \n  y\n", "a: |\n  x\n", "a: | # c\n  x\n", "a: |\nb: c\n", "a: >\n  x\n",
		"a: b\n# c\n", "a: b # c\n", "a: b#c\n", "a: &x b\nc: *x\n", "a: !!str 1\n", "<<: {a: b}\n", "a: <<\n",
		"---\na: b\n", "a: b\n---\nc: d\n", "a: b\n...\n", "a: b", "a: b\r\n", "a:\tb\n", "a: é\n", "\ufeffa: b\n",
		"a:\n", "a:\nb: c\n", "a: b: c\n", "a: b:\n", "a: http://x/y:z\n", "a:b: c\n", "a b: c d\n", "a : b\n", "a:  b  \n",
		"a: b\n c\n", "a: b\n\n  c\n", "a:\n  b: c\n d: e\n", "a:\n    b: c\n  d: e\n", "  a: b\n", "\n\na: b\n\n",
		"a: -1\nb: - c\n", "a: -\n", "a:\n- b\n-  c\n", "a:\n- b\n-\n", "a:\n  - - b\n", "a:\n- b: c\n  d: e\n- f: g\n",
		"a: {b: c}\n", "a: @x\n", "a: `x`\n", "a: %x\n", "a: ?x\n", "a: ,x\n", "a: x,y\n", "a: x[0]\n", "a[0]: x\n",
		"? a\n: b\n", "a: b\na: c\n", strings.Repeat("k", 1100) + ": v\n", "\"a\": b\n", "a: \"\"\n", "a: ''\n",
		"a:\n  b:\n  - c\n  d: e\n", "a:\n  b:\n  - c\n d: e\n", "- a: b\n  c:\n  - d\n- e\n", "a: |\n  x\n\n", "a: |-\n  x\n",
		"a:: b\n", "a: b :\n", "a: b :c\n", "a: 'x' \n", "a:\n  - b\n  -c\n", "a: |\n  x  \n  y\n", "-a: b\n", "1: a\n2: [1, 2.5, true]\n",
		"a:\n  b\n", "a: <x\n", "a: x=y\n", "a:\n- b:\n    c: d\n", "a: \"it's\"\n", "a: 'say \"x\"'\n", "a: b\n   \n  c\n",
		"a:\n  - |\n    x\n", "a: 1:2\nb: 10.0.0.1\nc: 1_000\nd: 2001-01-01T10:00:00Z\ne: 1.2\nf: 52:54:00:ab:cd:ef\ng: 1..2\nh: 0o17\ni: 0b101\nj: +1\nk: .5\nl: NULL\nm: TRUE\nn: no\no: off\np: Nope\nq: 1.2.3-4\nr: 12:30:00\n", "a:\n  - \"x\"\n  - 'y'\n  - [z]\n", "a: 1\n- b\n", "- a: 1\n  - b\n", "a: /dev:/dev\n", "a: c:\\\\x\n",
	}
}

// TestFastYAMLMatchesYAMLv3: whatever fastParse reads, yaml.v3 reads the
// same way, node for node (kind, tag, style, value, line, column); and
// fastParse does read what a fleet holds (objects and rendered templates),
// or it would save nothing.
func TestFastYAMLMatchesYAMLv3(t *testing.T) {
	for i, c := range fastYAMLCases() {
		checkFastYAML(t, fmt.Sprintf("case %d", i), []byte(c))
	}
	for _, root := range []string{"testdata", filepath.Join("..", "examples")} {
		require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" && ext != ".json" {
				return nil
			}
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			checkFastYAML(t, p, b)
			return nil
		}))
	}

	fleet := schematest.Fleet(300, 3)
	fsys := fstest.MapFS{}
	for name, content := range fleet {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
		require.True(t, checkFastYAML(t, name, []byte(content)), "fastParse gives up on a fleet file %s", name)
	}
	l := NewLoader()
	set, err := l.Load(context.Background(), fsys)
	require.NoError(t, err)
	hardware, templates := index(set.Hardware), index(set.Templates)
	for _, w := range set.Workflows {
		tmpl, hw := templates[Key{"", w.Spec.TemplateRef}], hardware[Key{"", w.Spec.HardwareRef}]
		out, err := l.renderer.Execute(context.Background(), tmpl.parsed.tmpl, templateData(hw, w.Spec.HardwareMap, tmpl.parsed.readsObject))
		require.NoError(t, err)
		require.True(t, checkFastYAML(t, "rendered for "+w.Metadata.Name, out), "fastParse gives up on a rendered template:\n%s", out)
	}
}

// FuzzFastYAML: on any input, fastParse gives up or agrees with yaml.v3.
func FuzzFastYAML(f *testing.F) {
	for _, c := range fastYAMLCases() {
		f.Add([]byte(c))
	}
	for name, content := range schematest.Fleet(2, 1) {
		if strings.HasPrefix(name, "templates/") {
			var t struct {
				Spec struct{ Data string } `yaml:"spec"`
			}
			require.NoError(f, yaml.Unmarshal([]byte(content), &t))
			f.Add([]byte(t.Spec.Data))
		}
		f.Add([]byte(content))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		fast := fastParse(src)
		if fast == nil {
			return
		}
		var slow *yaml.Node
		ok := func() (ok bool) {
			defer func() {
				if recover() != nil {
					ok = false // yaml.v3 panicked: it did not accept
				}
			}()
			slow, ok = slowParse(src)
			return ok
		}()
		if !ok {
			t.Fatalf("fastParse accepts what yaml.v3 refuses: %q", src)
		}
		if d := nodeDiff("", fast, slow); d != "" {
			t.Fatalf("trees differ: %s: %q", d, src)
		}
	})
}
