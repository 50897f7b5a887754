package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// globals are the flags every command that talks to tink-server shares.
type globals struct {
	server string
	token  string
	output string
	// getenv reads the environment; tests replace it.
	getenv func(string) string
}

// register adds the global flags to the root command. Their defaults come
// from TINK_SERVER and TINK_TOKEN, read when the command runs.
func (g *globals) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.server, "server", "", "tink-server URL (env TINK_SERVER, default "+client.DefaultServer+")")
	f.StringVar(&g.token, "token", "", "API token (env TINK_TOKEN)")
	f.StringVarP(&g.output, "output", "o", "", "output format: table, json or yaml (validate: text, json or yaml; diff: text, markdown, json or yaml)")
	f.StringVar(&g.output, "format", "", "the same as -o")
}

// client returns a client for the server the flags and environment name.
func (g *globals) client() (*client.Client, error) {
	server, token := g.server, g.token
	if server == "" {
		server = g.getenv("TINK_SERVER")
	}
	if server == "" {
		server = client.DefaultServer
	}
	if token == "" {
		token = g.getenv("TINK_TOKEN")
	}
	return client.New(server, token, nil)
}

// connect returns the output format and a client: what every command that
// asks the server and prints its answer needs first.
func (g *globals) connect() (string, *client.Client, error) {
	format, err := g.format()
	if err != nil {
		return "", nil, err
	}
	c, err := g.client()
	return format, c, err
}

// format returns the output format of a command that prints what the
// server answers: table (the default), json or yaml; or a usage error.
func (g *globals) format() (string, error) {
	return g.formatFor("table", "table", "json", "yaml")
}

// formatFor returns the output format -o (or its alias --format) asks a
// command for: def when none was given, else one of allowed. -o is the one
// way to ask for a format, so every command reads it here; "table" means
// a command's text output where it has no table.
func (g *globals) formatFor(def string, allowed ...string) (string, error) {
	f := g.output
	switch {
	case f == "":
		return def, nil
	case f == "table" && def == "text":
		return "text", nil
	case slices.Contains(allowed, f):
		return f, nil
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	return "", fmt.Errorf("-o must be %s, got %q", list, f)
}

// failed reports an error from the server or the network in one line on
// stderr, with the server's details below it, and exits 1. Usage errors do
// not come here: cobra reports them and run exits 2.
func failed(cmd *cobra.Command, err error) error {
	w := cmd.ErrOrStderr()
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(w, "tink: %s\n", ae.Message)
		printDetails(w, ae.Details)
		return exitError{code: 1}
	}
	fmt.Fprintf(w, "tink: %s\n", err)
	return exitError{code: 1}
}

// printDetails prints the server's details of an error, one a line. The
// request bodies are built here (from a file or flags), so the lines and
// columns the server names in them mean nothing to the reader: the field
// paths say where.
func printDetails(w io.Writer, details []client.Detail) {
	for _, d := range details {
		d.Line, d.Column = 0, 0
		fmt.Fprintf(w, "  %s\n", d.String())
	}
}

// printData writes v as JSON or YAML.
func printData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// table writes rows under a header, aligned.
type table struct {
	tw *tabwriter.Writer
}

// newTable starts a table; with no header it is a key/value view.
func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// readObjects reads FILE (or standard input for "-"), checks every object
// in it as tink validate checks one file, and returns them. Problems are
// printed as file:line:column: field: message and end the command with 1.
func readObjects(cmd *cobra.Command, file string) ([]schema.Object, error) {
	if file == "" {
		return nil, errors.New("--file is required (a path, or - for standard input)")
	}
	data, name, err := readInput(cmd.InOrStdin(), file)
	if err != nil {
		return nil, failed(cmd, err)
	}
	objs, _, list := schema.NewLoader().DecodeFile(name, data)
	if len(list) > 0 {
		for _, e := range list {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "tink: %s has %d error(s); nothing was sent\n", name, len(list))
		return nil, exitError{code: 1}
	}
	if len(objs) == 0 {
		return nil, failed(cmd, fmt.Errorf("%s holds no objects", name))
	}
	return objs, nil
}

// wireObject converts a declared object to the API's shape.
func wireObject(o schema.Object) (*client.Object, error) {
	if t, ok := o.(*schema.Template); ok && t.Bare {
		c := *t
		c.Bare = false
		o = &c
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var w client.Object
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ref names an object as the CLI prints it: hardware/node-01,
// workflow/tink-system/wf-1.
func ref(res client.Resource, namespace, name string) string {
	if namespace == "" {
		return res.Noun() + "/" + name
	}
	return res.Noun() + "/" + namespace + "/" + name
}

// source renders an object's source, marking an override.
func source(st *client.ObjectStatus) string {
	if st == nil {
		return ""
	}
	if st.Override != nil {
		return st.Source + " (overridden)"
	}
	return st.Source
}

// age renders how long ago t was, as kubectl does: 5s, 3m, 2h, 4d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return short(now.Sub(t))
}

// short renders a duration compactly.
func short(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// eventLine renders one event for people: time, sequence, type, message, actor.
func eventLine(ev state.Event) string {
	return fmt.Sprintf("%s  %6d  %-12s  %s  [%s]", ev.Time.UTC().Format(time.RFC3339), ev.Seq, ev.Type, ev.Message, ev.Actor)
}

// sameMap compares label or annotation maps; nil and empty are the same.
func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
