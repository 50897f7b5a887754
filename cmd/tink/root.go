package main

import (
	"io"
	"os"

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
	g := &globals{getenv: os.Getenv}
	g.register(root)
	root.AddCommand(newValidateCommand(g), newImportCommand(), newTemplateCommand(g),
		newHardwareCommand(g), newWorkflowCommand(g),
		newStatusCommand(g), newSyncCommand(g), newSuspendCommand(g), newResumeCommand(g), newDiffCommand(g),
		newDHCPCommand(g))
	return root
}
