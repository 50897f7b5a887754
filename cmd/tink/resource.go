package main

import (
	"errors"
	"fmt"
	"io"
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

// pushObjects creates each object, or updates it if it exists (with the
// version just read, so a concurrent change is not lost silently). It
// prints one line per object and reports every failure, exiting 1 if any.
func pushObjects(cmd *cobra.Command, g *globals, res client.Resource, objs []schema.Object, opts client.WriteOptions, update bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	failures := 0
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
		_, err = c.Create(ctx, res, w, opts)
		if err == nil {
			fmt.Fprintf(out, "%s created\n", name)
			continue
		}
		if !update || state.ErrorCode(err) != state.ECONFLICT {
			failures++
			reportFailure(cmd, name, err)
			continue
		}
		cur, err := c.Get(ctx, res, w.Metadata.Namespace, w.Metadata.Name)
		if err != nil {
			failures++
			reportFailure(cmd, name, err)
			continue
		}
		if jsonSame(cur.Spec, w.Spec) && sameMap(cur.Metadata.Labels, w.Metadata.Labels) && sameMap(cur.Metadata.Annotations, w.Metadata.Annotations) {
			fmt.Fprintf(out, "%s unchanged\n", name)
			continue
		}
		w.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		if _, err := c.Update(ctx, res, w, opts); err != nil {
			failures++
			reportFailure(cmd, name, err)
			continue
		}
		fmt.Fprintf(out, "%s updated\n", name)
	}
	if failures > 0 {
		return exitError{code: 1}
	}
	return nil
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
