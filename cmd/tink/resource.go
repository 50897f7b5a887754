package main

import (
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

// resourceCmd builds the commands every collection has: list, get, delete.
type resourceCmd struct {
	g   *globals
	res client.Resource
	// columns and row make the table of list and get.
	columns []string
	row     func(o client.Object, now time.Time) []string
	// detail, if set, is what get prints as a table instead of one row.
	detail func(w io.Writer, o client.Object, now time.Time) error
}

// printObjects prints objects in the chosen format. A table gets a
// NAMESPACE column when any object has a namespace.
func (rc *resourceCmd) printObjects(w io.Writer, format string, objs []client.Object, asList bool) error {
	if format != "table" {
		if !asList && len(objs) == 1 {
			return printData(w, format, objs[0])
		}
		return printData(w, format, client.List{APIVersion: schema.APIVersion, Kind: rc.res.Kind() + "List", Items: objs})
	}
	namespaced := false
	for _, o := range objs {
		if o.Metadata.Namespace != "" {
			namespaced = true
		}
	}
	header := rc.columns
	if namespaced {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t := newTable(w, header...)
	now := time.Now()
	for _, o := range objs {
		cells := rc.row(o, now)
		if namespaced {
			cells = append([]string{o.Metadata.Namespace}, cells...)
		}
		t.row(cells...)
	}
	return t.flush()
}

func (rc *resourceCmd) listCommand() *cobra.Command {
	var selector, namespace string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List " + string(rc.res),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, c, err := rc.g.connect()
			if err != nil {
				return err
			}
			objs, err := c.ListAll(cmd.Context(), rc.res, client.ListOptions{Namespace: namespace, LabelSelector: selector})
			if err != nil {
				return failed(cmd, err)
			}
			if objs == nil {
				objs = []client.Object{}
			}
			return rc.printObjects(cmd.OutOrStdout(), format, objs, true)
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, e.g. rack=r1,!spare")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: all)")
	return cmd
}

func (rc *resourceCmd) getCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: fmt.Sprintf("Show one %s", rc.res.Noun()),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := rc.g.connect()
			if err != nil {
				return err
			}
			o, err := c.Get(cmd.Context(), rc.res, namespace, args[0])
			if err != nil {
				return failed(cmd, err)
			}
			if format == "table" && rc.detail != nil {
				return rc.detail(cmd.OutOrStdout(), *o, time.Now())
			}
			return rc.printObjects(cmd.OutOrStdout(), format, []client.Object{*o}, false)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the object")
	return cmd
}

func (rc *resourceCmd) deleteCommand() *cobra.Command {
	var namespace, reason string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: fmt.Sprintf("Delete a %s (one that Git manages only with --force, until the next sync)", rc.res.Noun()),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rc.g.client()
			if err != nil {
				return err
			}
			d, err := c.Delete(cmd.Context(), rc.res, namespace, args[0], client.DeleteOptions{Force: force, Reason: reason})
			if err != nil {
				return failed(cmd, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", ref(rc.res, d.Namespace, d.Name))
			for _, w := range d.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the object")
	cmd.Flags().BoolVar(&force, "force", false, "delete even though Git manages the object")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the event")
	return cmd
}

// pushMode says what pushObjects does with each object of a file.
type pushMode int

const (
	// pushCreate creates objects; one that exists is an error pointing
	// at the update command.
	pushCreate pushMode = iota
	// pushUpdate updates objects; one that does not exist is an error
	// pointing at the create command.
	pushUpdate
	// pushApply creates an object, or updates it if it exists.
	pushApply
)

// pushObjects creates or updates each object as mode says (an update with
// the version just read, so a concurrent change is not lost silently). It
// prints one line per object and reports every failure, exiting 1 if any.
// Objects that Git manages are changed only with opts.Force.
func pushObjects(cmd *cobra.Command, g *globals, res client.Resource, file string, objs []schema.Object, opts client.WriteOptions, mode pushMode) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	failures := 0
	fail := func(name string, err error) {
		failures++
		reportFailure(cmd, name, err)
	}
	for _, o := range objs {
		if o.GetKind() != res.Kind() {
			fmt.Fprintf(cmd.ErrOrStderr(), "tink: %s/%s in %s is not a %s; nothing sent for it\n", o.GetKind(), o.GetMeta().Name, o.Origin().File, res.Noun())
			failures++
			continue
		}
		w, err := wireObject(o)
		if err != nil {
			return failed(cmd, err)
		}
		name := ref(res, w.Metadata.Namespace, w.Metadata.Name)
		if mode != pushUpdate {
			_, err = c.Create(ctx, res, w, opts)
			switch {
			case err == nil:
				fmt.Fprintf(out, "%s created\n", name)
				continue
			case state.ErrorCode(err) != state.ECONFLICT:
				fail(name, err)
				continue
			case mode == pushCreate:
				fail(name, fmt.Errorf("exists already; change it with tink %s update --file %s", res.Noun(), file))
				continue
			}
		}
		cur, err := c.Get(ctx, res, w.Metadata.Namespace, w.Metadata.Name)
		if state.ErrorCode(err) == state.ENOTFOUND {
			fail(name, fmt.Errorf("does not exist; create it with tink %s %s --file %s", res.Noun(), createVerb(res), file))
			continue
		}
		if err != nil {
			fail(name, err)
			continue
		}
		if state.JSONEqual(cur.Spec, w.Spec) && sameMap(cur.Metadata.Labels, w.Metadata.Labels) && sameMap(cur.Metadata.Annotations, w.Metadata.Annotations) {
			fmt.Fprintf(out, "%s unchanged\n", name)
			continue
		}
		if st := cur.Status; st != nil && st.Source == string(state.SourceGit) && !opts.Force {
			where := st.File
			if st.Revision != "" {
				where += " at " + st.Revision
			}
			fail(name, fmt.Errorf("managed by Git (%s): change it there, or run again with --force (and --reason) to override Git until Git changes it again", strings.TrimSpace(where)))
			continue
		}
		w.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		if _, err := c.Update(ctx, res, w, opts); err != nil {
			fail(name, err)
			continue
		}
		fmt.Fprintf(out, "%s updated\n", name)
	}
	if failures > 0 {
		return exitError{code: 1}
	}
	return nil
}

// createVerb is the command that creates objects of res from a file.
func createVerb(res client.Resource) string {
	if res == client.Hardware {
		return "push"
	}
	return "create"
}

// updateCommand updates existing objects from a file.
func (rc *resourceCmd) updateCommand() *cobra.Command {
	var file, reason string
	var force bool
	noun := rc.res.Noun()
	cmd := &cobra.Command{
		Use:   "update --file FILE",
		Short: fmt.Sprintf("Update existing %s from a file (- reads standard input); one that Git manages only with --force", rc.res),
		Long: fmt.Sprintf(`update checks every object of FILE as tink validate checks a file, then
replaces each %[1]s on tink-server with it (one that does not exist is an
error: tink %[1]s %[2]s). A %[1]s that Git manages is changed only with
--force: the change is recorded as an override (with --reason), shown as
drift in tink status, and lasts until Git changes it again.`, noun, createVerb(rc.res)),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readObjects(cmd, file)
			if err != nil {
				return err
			}
			return pushObjects(cmd, rc.g, rc.res, file, objs, client.WriteOptions{Force: force, Reason: reason}, pushUpdate)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with the objects, or - for standard input")
	cmd.Flags().BoolVar(&force, "force", false, "override objects that Git manages")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with an override")
	return cmd
}

// reportFailure prints why one object of several failed.
func reportFailure(cmd *cobra.Command, name string, err error) {
	w := cmd.ErrOrStderr()
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(w, "tink: %s: %s\n", name, ae.Message)
		printDetails(w, ae.Details)
		return
	}
	fmt.Fprintf(w, "tink: %s: %s\n", name, err)
}
