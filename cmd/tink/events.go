package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// eventPage is the page size used to read a workflow's history.
const eventPage = 1000

func newWorkflowEventsCommand(g *globals) *cobra.Command {
	var namespace string
	var follow, progress bool
	var since int64
	cmd := &cobra.Command{
		Use:   "events NAME",
		Short: "Show a workflow's events; --follow streams them until its run ends",
		Long: `events prints the workflow's events, one per line (-o json: one JSON object
per line). With --follow it keeps streaming until the workflow's latest run
ends, and exits 0 if the run succeeded, 1 otherwise. On a terminal --follow
shows the run's progress instead: actions done of total, the current action
and how long it has been running.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.connect()
			if err != nil {
				return err
			}
			var opts client.EventOptions
			if since >= 0 {
				s := uint64(since)
				opts.Since = &s
			}
			out := cmd.OutOrStdout()
			emit := func(ev state.Event) error { return printEvent(out, format, ev) }
			name := args[0]
			if !follow {
				for {
					page, err := c.WorkflowEvents(cmd.Context(), namespace, name, client.EventOptions{Since: opts.Since, Limit: eventPage})
					if err != nil {
						return failed(cmd, err)
					}
					for _, ev := range page.Items {
						if err := emit(ev); err != nil {
							return err
						}
					}
					if len(page.Items) < eventPage {
						return nil
					}
					last := page.Items[len(page.Items)-1].Seq
					opts.Since = &last
				}
			}
			var p *progressView
			if format == "table" && (progress || isTerminal(out)) {
				p = &progressView{w: out, c: c, namespace: namespace, name: name, now: time.Now}
				stop := p.start(cmd.Context())
				defer stop()
				emit = p.event
			}
			end, err := c.FollowWorkflow(cmd.Context(), namespace, name, opts, emit)
			if err != nil {
				if p != nil {
					p.clear()
				}
				return failed(cmd, err)
			}
			switch {
			case p != nil:
				p.finish(end)
			case format == "table":
				fmt.Fprintf(out, "workflow %s run %d ended: %s\n", name, end.Run, end.State)
			default:
				if err := printEvent(out, format, end); err != nil {
					return err
				}
			}
			if end.State != string(state.RunSuccess) {
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the workflow")
	f.BoolVarP(&follow, "follow", "f", false, "stream events until the workflow's run ends")
	f.Int64Var(&since, "since", -1, "only events after this sequence number")
	f.BoolVar(&progress, "progress", false, "show progress as on a terminal")
	_ = f.MarkHidden("progress")
	return cmd
}

// printEvent prints one event as a line, a JSON line, or a YAML document.
func printEvent(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return printData(w, format, v)
	}
	ev, ok := v.(state.Event)
	if !ok {
		return printData(w, "json", v)
	}
	_, err := fmt.Fprintln(w, eventLine(ev))
	return err
}

// progressView shows a run's progress on a terminal: a status line,
// redrawn every second and on every event, and a line per finished action.
type progressView struct {
	w         io.Writer
	c         *client.Client
	namespace string
	name      string
	now       func() time.Time

	mu  sync.Mutex
	run *client.Run
	// shown is whether the status line is on the screen.
	shown bool
	// printed holds the finished actions (task/name#attempt) already shown.
	printed map[string]bool
	began   time.Time
	// ctx bounds the reads of the workflow.
	ctx context.Context
}

// startLoop redraws the status line every second until the returned stop
// is called; stop waits for the redrawing to end.
func (p *progressView) startLoop(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.mu.Lock()
				p.drawLocked()
				p.mu.Unlock()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// start draws the status line and keeps it current until stop.
func (p *progressView) start(ctx context.Context) (stop func()) {
	p.began, p.ctx = p.now(), ctx
	p.refresh(ctx)
	p.mu.Lock()
	p.drawLocked()
	p.mu.Unlock()
	return p.startLoop(ctx)
}

// refresh reads the workflow's run again.
func (p *progressView) refresh(ctx context.Context) {
	o, err := p.c.Get(ctx, client.Workflows, p.namespace, p.name)
	if err != nil || o.Status == nil || o.Status.Run == nil {
		return
	}
	p.mu.Lock()
	p.run = o.Status.Run
	p.mu.Unlock()
}

// event prints the actions that finished since the last event, then
// redraws the status line. The run is read again rather than taken from the
// event, so each finished action (and attempt) is printed once, whatever
// order events and reads interleave in.
func (p *progressView) event(ev state.Event) error {
	if ev.Type != state.EventActionState && ev.Type != state.EventRunState {
		return nil
	}
	p.refresh(p.ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printFinishedLocked()
	p.drawLocked()
	return nil
}

// printFinishedLocked prints a line for each action that has ended and was
// not printed yet.
func (p *progressView) printFinishedLocked() {
	if p.run == nil {
		return
	}
	if p.printed == nil {
		p.printed = map[string]bool{}
	}
	for _, a := range p.run.Actions {
		key := fmt.Sprintf("%s/%s#%d", a.Task, a.Name, a.Attempt)
		if !state.RunState(a.State).Terminal() || p.printed[key] {
			continue
		}
		p.printed[key] = true
		mark := "✓"
		if a.State != string(state.RunSuccess) {
			mark = "✗"
		}
		line := fmt.Sprintf("%s %s/%s %s", mark, a.Task, a.Name, a.State)
		if !a.StartedAt.IsZero() && !a.FinishedAt.IsZero() {
			line += " in " + short(a.FinishedAt.Sub(a.StartedAt))
		}
		if a.Message != "" {
			line += ": " + a.Message
		}
		p.clearLocked()
		fmt.Fprintln(p.w, line)
	}
}

// drawLocked redraws the status line: [done/total] current action, elapsed.
func (p *progressView) drawLocked() {
	line := fmt.Sprintf("workflow %s: waiting for its run", p.name)
	if r := p.run; r != nil {
		line = fmt.Sprintf("[%d/%d] run %d %s", r.ActionsDone, r.ActionsTotal, r.Number, r.State)
		if r.CurrentAction != "" && !state.RunState(r.State).Terminal() {
			line += "  " + r.CurrentAction
			if !r.CurrentActionStartedAt.IsZero() {
				line += " " + short(p.now().Sub(r.CurrentActionStartedAt))
			}
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

func (p *progressView) clearLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progressView) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

// finish replaces the status line with the run's outcome.
func (p *progressView) finish(end *client.StreamEnd) {
	p.refresh(p.ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printFinishedLocked()
	p.clearLocked()
	done, total := 0, 0
	if p.run != nil {
		done, total = p.run.ActionsDone, p.run.ActionsTotal
	}
	fmt.Fprintf(p.w, "workflow %s run %d: %s (%d of %d actions done, followed for %s)\n", p.name, end.Run, end.State, done, total, short(p.now().Sub(p.began)))
}

// newObjectEventsCommand prints the events of one object of kind (hardware,
// workflow sets): what changed it, who, and at which revision.
func newObjectEventsCommand(g *globals, kind, noun string) *cobra.Command {
	var namespace string
	var since int64
	cmd := &cobra.Command{
		Use:   "events NAME",
		Short: fmt.Sprintf("Show a %s's events: each change, who made it (the token, or the Git commit's author) and at which revision", noun),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.connect()
			if err != nil {
				return err
			}
			opts := client.EventOptions{Kind: kind, Namespace: namespace, Name: args[0], Limit: eventPage}
			if since >= 0 {
				s := uint64(since)
				opts.Since = &s
			}
			for {
				page, err := c.Events(cmd.Context(), opts)
				if err != nil {
					return failed(cmd, err)
				}
				for _, ev := range page.Items {
					if err := printEvent(cmd.OutOrStdout(), format, ev); err != nil {
						return err
					}
				}
				if len(page.Items) < eventPage {
					return nil
				}
				last := page.Items[len(page.Items)-1].Seq
				opts.Since = &last
			}
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the "+noun)
	cmd.Flags().Int64Var(&since, "since", -1, "only events after this sequence number")
	return cmd
}
