package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newRootCommand builds the command tree; each call gives a fresh tree so
// tests never share flag state.
func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "tink",
		Short:         "Declarative bare-metal provisioning: hardware, templates and workflows from Git",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newValidateCommand(), newImportCommand(), newTemplateCommand())
	return root
}
