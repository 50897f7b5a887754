package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/schema"
)

func newValidateCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check a repository of hardware, templates and workflows, reporting every mistake",
		Long: `validate loads every .yaml, .yml, .json and .cue file under PATH (default .),
checks each object against the tinkops schema, checks the set as a whole
(unique names, MACs and IPs; references; templates rendered for each workflow)
and prints every error as file:line:column: field: message.

Exit status: 0 when the repository is valid, 1 when it has errors, 2 when it
cannot be read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			format, err := g.formatFor("text", "text", "json", "yaml")
			if err != nil {
				return err
			}
			st, err := os.Stat(dir)
			if err != nil {
				return fmt.Errorf("read repository: %w", err)
			}
			if !st.IsDir() {
				return fmt.Errorf("read repository: %s is not a directory", dir)
			}
			set, err := schema.NewLoader().Load(cmd.Context(), os.DirFS(dir))
			var list schema.ErrorList
			if err != nil && !errors.As(err, &list) {
				return err
			}
			out := cmd.OutOrStdout()
			if format != "text" {
				res := validateResult{Valid: len(list) == 0, Errors: list}
				if res.Errors == nil {
					res.Errors = schema.ErrorList{}
				}
				if set != nil {
					res.Counts = set.Counts()
					res.Ignored = set.Ignored
				}
				if err := printData(out, format, res); err != nil {
					return err
				}
			} else if len(list) == 0 {
				fmt.Fprintf(out, "ok: %s\n", summary(set))
			} else {
				for _, e := range list {
					fmt.Fprintln(out, e.Error())
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d error(s)\n", len(list))
			}
			if len(list) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	return cmd
}

// validateResult is the -o json (and yaml) document; docs/cli.md documents
// its shape for CI.
type validateResult struct {
	Valid   bool             `json:"valid"`
	Counts  map[string]int   `json:"counts,omitempty"`
	Ignored int              `json:"ignoredServerFields,omitempty"`
	Errors  schema.ErrorList `json:"errors"`
}

// summary is the one-line description of a valid set.
func summary(set *schema.Set) string {
	parts := []string{
		plural(len(set.Hardware), "hardware", "hardware"),
		plural(len(set.Templates), "template", "templates"),
		plural(len(set.Workflows), "workflow", "workflows"),
	}
	if n := len(set.Machines); n > 0 {
		parts = append(parts, plural(n, "machine", "machines"))
	}
	s := strings.Join(parts, ", ")
	if set.Ignored > 0 {
		s += fmt.Sprintf(" (%d server-set fields ignored)", set.Ignored)
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
