package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show where Git stands, what the server holds and what drifts from Git",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusAction(cmd, g, func(ctx context.Context, c *client.Client) (*client.Status, error) {
				return c.Status(ctx)
			}, "")
		},
	}
}

func newSyncCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Reconcile with Git now and wait for it; exits 1 if the revision has errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := statusAction(cmd, g, func(ctx context.Context, c *client.Client) (*client.Status, error) {
				return c.Sync(ctx)
			}, "synced")
			return err
		},
	}
}

func newSuspendCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "suspend",
		Short: "Pause reconciliation with Git (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusAction(cmd, g, func(ctx context.Context, c *client.Client) (*client.Status, error) {
				return c.Suspend(ctx)
			}, "reconciliation suspended")
		},
	}
}

func newResumeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume",
		Short: "Resume reconciliation with Git (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusAction(cmd, g, func(ctx context.Context, c *client.Client) (*client.Status, error) {
				return c.Resume(ctx)
			}, "reconciliation resumed")
		},
	}
}

// statusAction runs a call that answers with the status and prints it;
// headline, if set, is printed first. A sync whose revision has errors
// exits 1.
func statusAction(cmd *cobra.Command, g *globals, fn func(context.Context, *client.Client) (*client.Status, error), headline string) error {
	format, c, err := g.connect()
	if err != nil {
		return err
	}
	st, err := fn(cmd.Context(), c)
	if err != nil {
		return failed(cmd, err)
	}
	out := cmd.OutOrStdout()
	stalled := headline == "synced" && (len(st.Sync.Errors) > 0 || st.Sync.Failure == string(state.FailureStalled))
	if stalled {
		headline = fmt.Sprintf("not applied: %s has %d error(s); %s stays in effect", st.Sync.LastAttemptedRevision, len(st.Sync.Errors), orNothing(st.Sync.LastAppliedRevision))
	}
	if format != "table" {
		if err := printData(out, format, st); err != nil {
			return err
		}
	} else {
		if headline != "" {
			fmt.Fprintln(out, headline)
		}
		if err := printStatus(out, st, time.Now()); err != nil {
			return err
		}
	}
	if stalled {
		return exitError{code: 1}
	}
	return nil
}

func orNothing(rev string) string {
	if rev == "" {
		return "nothing applied yet"
	}
	return rev
}

// printStatus renders the status for people.
func printStatus(w io.Writer, st *client.Status, now time.Time) error {
	t := newTable(w)
	kv := func(k, v string) { t.row(k+":", v) }
	s := st.Sync
	applied := s.LastAppliedRevision
	if applied == "" {
		applied = "nothing applied yet"
	}
	kv("Applied", applied)
	if s.LastAttemptedRevision != "" && s.LastAttemptedRevision != s.LastAppliedRevision {
		kv("Attempted", s.LastAttemptedRevision)
	}
	if !s.LastSyncAt.IsZero() {
		line := age(now, s.LastSyncAt) + " ago"
		if s.LastDuration != "" {
			line += ", took " + s.LastDuration
		}
		kv("Last sync", line)
	}
	if src := st.Source; src != nil {
		line := src.Source + " (" + src.Ref + ")"
		if !src.LastFetch.IsZero() {
			line += ", fetched " + age(now, src.LastFetch) + " ago"
		}
		kv("Source", line)
		if src.Failures > 0 && src.LastError != "" {
			line := fmt.Sprintf("%s (%d failed in a row", src.LastError, src.Failures)
			if !src.NextSync.IsZero() {
				line += fmt.Sprintf("; next try in %s", age(src.NextSync, now))
			}
			kv("Source error", line+")")
		}
	}
	if r := st.Replica; r != nil {
		role := "follower (another replica leads)"
		if r.Leader {
			role = "leader"
		}
		kv("Replica", r.Name+", "+role)
	}
	switch {
	case s.Suspended:
		kv("Reconciling", "no: suspended (tink resume)")
	default:
		kv("Reconciling", "yes")
	}
	if s.Failure != "" {
		kv("Last attempt", s.Failure+": "+s.Reason)
	}
	if len(s.Errors) > 0 {
		kv("Errors", fmt.Sprintf("%d in the last attempted revision", len(s.Errors)))
	}
	ready := "yes"
	if !st.Ready {
		ready = "no: the first sync has not finished"
	}
	kv("Ready", ready)
	kv("Objects", objectCounts(st.Objects))
	kv("Workflows", workflowCounts(st.Workflows))
	kv("Events", fmt.Sprintf("%d to %d retained", st.Events.Oldest, st.Events.Latest))
	if len(st.Drift) == 0 {
		kv("Drift", "none")
	} else {
		kv("Drift", fmt.Sprintf("%d object(s) overridden through the API", len(st.Drift)))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, e := range s.Errors {
		fmt.Fprintf(w, "  error: %s\n", e.Error())
	}
	for _, d := range st.Drift {
		line := fmt.Sprintf("  drift: %s/%s overridden by %s %s ago", strings.ToLower(d.Kind), qualified(d.Namespace, d.Name), d.By, age(now, d.At))
		if d.Reason != "" {
			line += ": " + d.Reason
		}
		if len(d.Fields) > 0 {
			line += " (" + strings.Join(d.Fields, ", ") + ")"
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// objectCounts renders "3 Hardware (2 git, 1 api), ...".
func objectCounts(m map[string]map[string]int) string {
	var parts []string
	for _, kind := range []string{state.KindHardware, state.KindTemplate, state.KindWorkflow, state.KindMachine} {
		bySource := m[kind]
		total := bySource["git"] + bySource["api"]
		if total == 0 && kind == state.KindMachine {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s (%d git, %d api)", total, kind, bySource["git"], bySource["api"]))
	}
	return strings.Join(parts, ", ")
}

// workflowCounts renders "2 RUNNING, 5 SUCCESS" in a stable order.
func workflowCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}
