package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
)

func newTemplateCommand(g *globals) *cobra.Command {
	rc := &resourceCmd{
		g:       g,
		res:     client.Templates,
		columns: []string{"NAME", "SOURCE", "REVISION", "UPDATED"},
		row: func(o client.Object, now time.Time) []string {
			var rev string
			var updated time.Time
			if o.Status != nil {
				rev, updated = shortRevision(o.Status.Revision), o.Status.UpdatedAt
			}
			return []string{o.Metadata.Name, source(o.Status), rev, age(now, updated)}
		},
	}
	cmd := &cobra.Command{
		Use:   "template",
		Short: "Work with templates",
	}
	cmd.AddCommand(newTemplateRenderCommand(), newTemplateCreateCommand(g), rc.updateCommand(), rc.listCommand(), rc.getCommand(), rc.deleteCommand())
	return cmd
}

func newTemplateCreateCommand(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create --file FILE",
		Short: "Create templates on tink-server from a file: Template objects or a bare template document (- reads standard input)",
		Long: `create checks FILE as tink validate checks a file, then creates each template
on tink-server (source api). The server renders a template for every
workflow that uses it before accepting a change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readObjects(cmd, file)
			if err != nil {
				return err
			}
			return pushObjects(cmd, g, client.Templates, file, objs, client.WriteOptions{}, pushCreate)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with the template, or - for standard input")
	return cmd
}

// shortRevision abbreviates main@sha1:<40 hex> to main@sha1:<12 hex>.
func shortRevision(rev string) string {
	if i := strings.LastIndex(rev, ":"); i >= 0 && len(rev)-i-1 > 12 {
		return rev[:i+13]
	}
	return rev
}

func newTemplateRenderCommand() *cobra.Command {
	var hardware, repo, namespace string
	var pairs []string
	cmd := &cobra.Command{
		Use:   "render TEMPLATE --hardware HARDWARE",
		Short: "Print a template rendered for a machine, as its worker would receive it",
		Long: `render loads the repository (--repo, default .), renders TEMPLATE for
HARDWARE exactly as a workflow run would, checks the result, and prints it.
The hardwareMap keys come from --map k=v (repeatable); without --map,
device_1 is the hardware's first MAC address.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if hardware == "" {
				return errors.New("--hardware is required")
			}
			hwMap := map[string]string{}
			for _, p := range pairs {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" {
					return fmt.Errorf("--map %q: want key=value", p)
				}
				hwMap[k] = v
			}
			l := schema.NewLoader()
			set, err := l.Load(cmd.Context(), os.DirFS(repo))
			var list schema.ErrorList
			if errors.As(err, &list) {
				for _, e := range list {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "the repository has %d error(s); fix them first\n", len(list))
				return exitError{code: 1}
			} else if err != nil {
				return err
			}
			out, errs := l.RenderFor(set, schema.Key{Namespace: namespace, Name: args[0]}, schema.Key{Namespace: namespace, Name: hardware}, hwMap)
			if len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				return exitError{code: 1}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&hardware, "hardware", "", "hardware to render for")
	cmd.Flags().StringVar(&repo, "repo", ".", "repository directory")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the template and hardware")
	cmd.Flags().StringArrayVar(&pairs, "map", nil, "hardwareMap entry key=value (repeatable)")
	return cmd
}
