package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/schema"
)

func newTemplateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template",
		Short: "Work with templates",
	}
	cmd.AddCommand(newTemplateRenderCommand())
	return cmd
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
