package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/schema"
)

// maxImportSize bounds a dump read by tink import; a 10,000-machine fleet
// dumps to ~20 MiB.
const maxImportSize = 512 << 20

func newImportCommand() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Split a Tinkerbell cluster dump into one clean file per object, ready to commit",
		Long: `import reads a dump of a running Tinkerbell
(kubectl get hardware,templates,workflows,machines.bmc -A -o yaml),
or any multi-document YAML of Tinkerbell objects, and writes one file per
object under --out in the conventional layout:

  hardware/<name>.yaml   templates/<name>.yaml   workflows/<name>.yaml   bmc/<name>.yaml

(objects with a namespace go into a folder named after it, e.g.
hardware/tink-system/<name>.yaml). Server-set fields (uid, resourceVersion,
managedFields, ...) and status are removed and keys are written in a stable
order, so importing the same dump again changes nothing. A file that exists
with other content is not overwritten unless --force is given. The result is
validated as tink validate would.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			data, name, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			l := schema.NewLoader()
			objs, ignored, errs := l.DecodeFile(name, data)
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(stdout, e.Error())
				}
				fmt.Fprintf(stderr, "%d error(s); nothing written\n", len(errs))
				return exitError{code: 1}
			}
			var written, unchanged int
			var refused []string
			for _, o := range objs {
				rel := importPath(o)
				b, err := encodeObject(o)
				if err != nil {
					return fmt.Errorf("encode %s/%s: %w", o.GetKind(), o.GetMeta().Name, err)
				}
				target := filepath.Join(out, rel)
				switch old, err := os.ReadFile(target); {
				case err == nil && bytes.Equal(old, b):
					unchanged++
					continue
				case err == nil && !force:
					refused = append(refused, rel)
					continue
				case err != nil && !errors.Is(err, os.ErrNotExist):
					return fmt.Errorf("read %s: %w", target, err)
				}
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(target, b, 0o644); err != nil {
					return err
				}
				written++
			}
			fmt.Fprintf(stdout, "imported %d objects into %s: %d written, %d unchanged", len(objs), out, written, unchanged)
			if ignored > 0 {
				fmt.Fprintf(stdout, ", %d server-set fields dropped", ignored)
			}
			fmt.Fprintln(stdout)
			if len(refused) > 0 {
				sort.Strings(refused)
				for _, r := range refused {
					fmt.Fprintf(stderr, "not overwritten (changed since; use --force): %s\n", r)
				}
				return exitError{code: 1}
			}
			if _, err := l.Load(cmd.Context(), os.DirFS(out)); err != nil {
				var list schema.ErrorList
				if errors.As(err, &list) {
					for _, e := range list {
						fmt.Fprintln(stdout, e.Error())
					}
					fmt.Fprintf(stderr, "the imported repository has %d error(s)\n", len(list))
					return exitError{code: 1}
				}
				return err
			}
			fmt.Fprintln(stdout, "ok: the imported repository validates")
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the repository into")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that differ from the import")
	return cmd
}

// readInput reads FILE, or standard input for "-", within maxImportSize.
func readInput(stdin io.Reader, arg string) ([]byte, string, error) {
	r, name := stdin, "<stdin>"
	if arg != "-" {
		f, err := os.Open(arg)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		r, name = f, filepath.Base(arg)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxImportSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxImportSize {
		return nil, "", fmt.Errorf("%s is larger than %d MiB", name, maxImportSize>>20)
	}
	return data, name, nil
}

// importPath is where an object goes in the conventional layout.
func importPath(o schema.Object) string {
	dir := map[string]string{
		schema.KindHardware: "hardware",
		schema.KindTemplate: "templates",
		schema.KindWorkflow: "workflows",
		schema.KindMachine:  "bmc",
	}[o.GetKind()]
	m := o.GetMeta()
	return filepath.Join(dir, m.Namespace, m.Name+".yaml")
}

// encodeObject writes an object as YAML: apiVersion, kind, metadata, spec
// first, the rest of every mapping in sorted order, multi-line strings
// (template data) as literal blocks.
func encodeObject(o schema.Object) ([]byte, error) {
	if t, ok := o.(*schema.Template); ok && t.Bare {
		c := *t
		c.Bare = false
		o = &c
	}
	j, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(toNode(v, 0)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// keyRank orders the keys people read first.
func keyRank(depth int, k string) int {
	order := map[string]int{"apiVersion": 0, "kind": 1, "metadata": 2, "spec": 3, "name": 0, "namespace": 1, "labels": 2, "annotations": 3}
	if r, ok := order[k]; ok && depth <= 1 {
		return r
	}
	return 100
}

func toNode(v any, depth int) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			ri, rj := keyRank(depth, keys[i]), keyRank(depth, keys[j])
			if ri != rj {
				return ri < rj
			}
			return keys[i] < keys[j]
		})
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toNode(x[k], depth+1))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			n.Content = append(n.Content, toNode(e, depth+1))
		}
		return n
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
		if strings.Contains(x, "\n") {
			n.Style = yaml.LiteralStyle
		}
		return n
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: x.String()}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: x.String()}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(x)}
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}
