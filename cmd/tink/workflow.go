package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

func newWorkflowCommand(g *globals) *cobra.Command {
	rc := &resourceCmd{
		g:       g,
		res:     client.Workflows,
		columns: []string{"NAME", "TEMPLATE", "HARDWARE", "RUN", "STATE", "PROGRESS", "SOURCE"},
		row:     workflowRow,
		detail:  workflowDetail,
	}
	cmd := &cobra.Command{
		Use:     "workflow",
		Aliases: []string{"wf"},
		Short:   "Work with workflows on tink-server",
	}
	cmd.AddCommand(newWorkflowCreateCommand(g), rc.updateCommand(), rc.listCommand(), rc.getCommand(), rc.deleteCommand(),
		newWorkflowEventsCommand(g), newWorkflowRetryCommand(g), newWorkflowCancelCommand(g))
	return cmd
}

func newWorkflowCreateCommand(g *globals) *cobra.Command {
	var template, hardware, name, namespace string
	var pairs []string
	cmd := &cobra.Command{
		Use:   "create --template TEMPLATE --hardware HARDWARE",
		Short: "Create a workflow on tink-server; it starts at once",
		Long: `create runs TEMPLATE on HARDWARE: the workflow is created (source api) with
its first run, which the server starts. --map sets hardwareMap entries
(device_1 defaults to the hardware's first MAC address). Without --name the
workflow is named HARDWARE-TEMPLATE-xxxxx.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if template == "" || hardware == "" {
				return errors.New("--template and --hardware are required")
			}
			hwMap := map[string]string{}
			for _, p := range pairs {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" {
					return fmt.Errorf("--map %q: want key=value", p)
				}
				hwMap[k] = v
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if _, ok := hwMap["device_1"]; !ok {
				hw, err := c.Get(ctx, client.Hardware, namespace, hardware)
				if err != nil {
					return failed(cmd, err)
				}
				var spec schema.HardwareSpec
				_ = json.Unmarshal(hw.Spec, &spec)
				h := schema.Hardware{Spec: spec}
				macs := h.MACs()
				if len(macs) == 0 {
					return failed(cmd, fmt.Errorf("hardware %s has no MAC address; give --map device_1=<MAC>", hardware))
				}
				hwMap["device_1"] = macs[0]
			}
			if name == "" {
				name = generateName(hardware, template)
			}
			spec, err := json.Marshal(schema.WorkflowSpec{TemplateRef: template, HardwareRef: hardware, HardwareMap: hwMap})
			if err != nil {
				return err
			}
			obj := &client.Object{APIVersion: client.APIVersion, Kind: state.KindWorkflow,
				Metadata: client.ObjectMeta{Name: name, Namespace: namespace}, Spec: spec}
			created, err := c.Create(ctx, client.Workflows, obj, client.WriteOptions{})
			if err != nil {
				return failed(cmd, err)
			}
			if format != "table" {
				return printData(cmd.OutOrStdout(), format, created)
			}
			line := ref(client.Workflows, namespace, name) + " created"
			if r := created.Status.Run; r != nil {
				line += fmt.Sprintf(": run %d %s", r.Number, r.State)
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&template, "template", "", "template to run")
	f.StringVar(&hardware, "hardware", "", "hardware to run it on")
	f.StringVar(&name, "name", "", "workflow name (default HARDWARE-TEMPLATE-xxxxx)")
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the workflow, template and hardware")
	f.StringArrayVar(&pairs, "map", nil, "hardwareMap entry key=value (repeatable)")
	return cmd
}

// generateName names a workflow after what it does, with a random suffix
// so that running a template twice gives two workflows.
func generateName(hardware, template string) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	base := hardware + "-" + template
	if len(base) > 240 {
		base = base[:240]
	}
	return strings.TrimRight(base, "-.") + "-" + string(b)
}

// workflowRow is a workflow's line in a list.
func workflowRow(o client.Object, _ time.Time) []string {
	var spec schema.WorkflowSpec
	_ = json.Unmarshal(o.Spec, &spec)
	run, st, progress := "", "", ""
	if o.Status != nil && o.Status.Run != nil {
		r := o.Status.Run
		run, st = fmt.Sprint(r.Number), r.State
		if r.ActionsTotal > 0 {
			progress = fmt.Sprintf("%d/%d", r.ActionsDone, r.ActionsTotal)
		}
	} else if spec.Disabled != nil && *spec.Disabled {
		st = "DISABLED"
	}
	return []string{o.Metadata.Name, spec.TemplateRef, spec.HardwareRef, run, st, progress, source(o.Status)}
}

// workflowDetail is what tink workflow get shows: where the run stands and
// every action.
func workflowDetail(w io.Writer, o client.Object, now time.Time) error {
	var spec schema.WorkflowSpec
	_ = json.Unmarshal(o.Spec, &spec)
	t := newTable(w)
	kv := func(k, v string) { t.row(k+":", v) }
	kv("Name", o.Metadata.Name)
	if o.Metadata.Namespace != "" {
		kv("Namespace", o.Metadata.Namespace)
	}
	kv("Template", spec.TemplateRef)
	kv("Hardware", spec.HardwareRef)
	kv("Source", source(o.Status))
	r := o.Status.Run
	if r == nil {
		kv("State", "never ran")
		return t.flush()
	}
	kv("Run", fmt.Sprintf("%d (created %s ago)", r.Number, age(now, r.CreatedAt)))
	kv("State", r.State)
	if r.Reason != "" {
		kv("Reason", r.Reason)
	}
	if r.CurrentAction != "" {
		a := r.CurrentAction
		if !r.CurrentActionStartedAt.IsZero() && !state.RunState(r.State).Terminal() {
			a += ", running for " + short(now.Sub(r.CurrentActionStartedAt))
		}
		kv("Action", a)
	}
	kv("Progress", fmt.Sprintf("%d of %d actions done", r.ActionsDone, r.ActionsTotal))
	if err := t.flush(); err != nil {
		return err
	}
	if len(r.Actions) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	at := newTable(w, "TASK", "ACTION", "STATE", "ATTEMPT", "DURATION", "MESSAGE")
	for _, a := range r.Actions {
		dur := ""
		switch {
		case !a.FinishedAt.IsZero() && !a.StartedAt.IsZero():
			dur = short(a.FinishedAt.Sub(a.StartedAt))
		case !a.StartedAt.IsZero():
			dur = short(now.Sub(a.StartedAt))
		}
		attempt := ""
		if a.Attempt > 0 {
			attempt = fmt.Sprint(a.Attempt)
		}
		at.row(a.Task, a.Name, a.State, attempt, dur, a.Message)
	}
	return at.flush()
}

func newWorkflowRetryCommand(g *globals) *cobra.Command {
	var namespace string
	var fromStart bool
	cmd := &cobra.Command{
		Use:   "retry NAME",
		Short: "Run a workflow's failed run again, from the action that failed (or --from-start)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return steer(cmd, g, namespace, args[0], func(c *client.Client) (*client.Run, error) {
				return c.Retry(cmd.Context(), namespace, args[0], fromStart)
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the workflow")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "run every action again, not only from the one that failed")
	return cmd
}

func newWorkflowCancelCommand(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "cancel NAME",
		Short: "Cancel a workflow's run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return steer(cmd, g, namespace, args[0], func(c *client.Client) (*client.Run, error) {
				return c.Cancel(cmd.Context(), namespace, args[0])
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the workflow")
	return cmd
}

// steer runs retry or cancel and prints the run.
func steer(cmd *cobra.Command, g *globals, namespace, name string, fn func(*client.Client) (*client.Run, error)) error {
	return apiCall(cmd, g, fn, func(run *client.Run) string {
		line := fmt.Sprintf("%s: run %d %s", ref(client.Workflows, namespace, name), run.Number, run.State)
		if run.Reason != "" {
			line += " (" + run.Reason + ")"
		}
		return line
	})
}

// apiCall runs one API call and prints its result: as data with -o json or
// yaml, else as the one line line makes of it.
func apiCall[T any](cmd *cobra.Command, g *globals, fn func(*client.Client) (T, error), line func(T) string) error {
	format, c, err := g.connect()
	if err != nil {
		return err
	}
	v, err := fn(c)
	if err != nil {
		return failed(cmd, err)
	}
	if format != "table" {
		return printData(cmd.OutOrStdout(), format, v)
	}
	fmt.Fprintln(cmd.OutOrStdout(), line(v))
	return nil
}
