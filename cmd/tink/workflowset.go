package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

func newWorkflowSetCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "workflowset",
		Aliases: []string{"ws"},
		Short:   "Work with workflow sets: one template over every machine a selector picks, in waves",
		Long: `Workflow sets are declared in Git (kind WorkflowSet, apiVersion
tinkops.dev/v1alpha1). These commands show their rollout: how many machines
are in which state, the wave in progress, the failure budget left, and
resume a set that paused because more machines failed than maxFailures.`,
	}
	cmd.AddCommand(newWorkflowSetListCommand(g), newWorkflowSetGetCommand(g), newWorkflowSetResumeCommand(g),
		newObjectEventsCommand(g, schema.KindWorkflowSet, "workflow set"))
	return cmd
}

var workflowSetColumns = []string{"NAME", "SELECTOR", "TEMPLATE", "MACHINES", "DONE", "RUNNING", "WAITING", "FAILED", "WAVE", "BUDGET", "STATE"}

func newWorkflowSetListCommand(g *globals) *cobra.Command {
	var namespace, selector string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflow sets with their rollout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, c, err := g.connect()
			if err != nil {
				return err
			}
			list, err := c.WorkflowSets(cmd.Context(), namespace, selector)
			if err != nil {
				return failed(cmd, err)
			}
			if format != "table" {
				return printData(cmd.OutOrStdout(), format, list)
			}
			t := newTable(cmd.OutOrStdout(), workflowSetColumns...)
			for _, ws := range list.Items {
				t.row(workflowSetRow(ws)...)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: all)")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, e.g. team=infra")
	return cmd
}

func newWorkflowSetGetCommand(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a workflow set: its machines by state, the wave, the failure budget",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.connect()
			if err != nil {
				return err
			}
			ws, err := c.WorkflowSet(cmd.Context(), namespace, args[0])
			if err != nil {
				return failed(cmd, err)
			}
			return printWorkflowSet(cmd.OutOrStdout(), format, ws)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the set")
	return cmd
}

func newWorkflowSetResumeCommand(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Resume a paused workflow set: its failures so far are accepted, its machines start again in waves",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.connect()
			if err != nil {
				return err
			}
			ws, err := c.ResumeWorkflowSet(cmd.Context(), namespace, args[0])
			if err != nil {
				return failed(cmd, err)
			}
			return printWorkflowSet(cmd.OutOrStdout(), format, ws)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the set")
	return cmd
}

// setSpecOf reads what the table shows of a set's spec.
func setSpecOf(ws client.WorkflowSet) (selector, template string) {
	var spec schema.WorkflowSetSpec
	_ = json.Unmarshal(ws.Spec, &spec)
	return spec.HardwareSelector, spec.TemplateRef
}

func workflowSetRow(ws client.WorkflowSet) []string {
	r := ws.Status.Rollout
	sel, tmpl := setSpecOf(ws)
	st := "rolling out"
	switch {
	case r.Paused:
		st = "PAUSED"
	case r.States[string(state.RunPending)]+r.States[string(state.RunRunning)]+r.States[string(state.RunPreparing)]+r.States["NOT_STARTED"] == 0:
		st = "done"
	}
	return []string{ws.Metadata.Name, sel, tmpl, fmt.Sprint(r.Machines), fmt.Sprint(r.States[string(state.RunSuccess)]),
		fmt.Sprint(r.States[string(state.RunRunning)] + r.States[string(state.RunPreparing)]), fmt.Sprint(r.States[string(state.RunPending)] + r.States["NOT_STARTED"]),
		fmt.Sprint(len(r.Failed)), fmt.Sprintf("%d/%d", r.Wave, r.Waves), fmt.Sprint(r.FailureBudget), st}
}

// printWorkflowSet shows one set: the row, then the counts by state and
// the failed machines.
func printWorkflowSet(w io.Writer, format string, ws *client.WorkflowSet) error {
	if format != "table" {
		return printData(w, format, ws)
	}
	t := newTable(w, workflowSetColumns...)
	t.row(workflowSetRow(*ws)...)
	if err := t.flush(); err != nil {
		return err
	}
	r := ws.Status.Rollout
	states := make([]string, 0, len(r.States))
	for s, n := range r.States {
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(states)
	fmt.Fprintf(w, "\nrun %d: %s; at most %d at a time, pausing after more than %d failures\n", r.Run, strings.Join(states, ", "), r.MaxInFlight, r.MaxFailures)
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(r.Failed, ", "))
	}
	if r.Paused {
		fmt.Fprintf(w, "paused since %s: %s\nresume with: tink workflowset resume %s (or bump the set's run in Git)\n", r.PausedAt.UTC().Format("2006-01-02T15:04:05Z"), r.Reason, ws.Metadata.Name)
	}
	return nil
}
