package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// setFleetRepo is a repository of n machines in rack r7, a one-action
// template and the WorkflowSet reimage over them.
type setFleetRepo struct {
	t   *testing.T
	dir string
}

func (f setFleetRepo) write(name, content string) {
	p := filepath.Join(f.dir, name)
	require.NoError(f.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(f.t, os.WriteFile(p, []byte(content), 0o644))
}

func (f setFleetRepo) set(run int) {
	f.write("sets/reimage.yaml", fmt.Sprintf(`apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: reimage}
spec:
  templateRef: image
  hardwareSelector: rack=r7
  run: %d
  rollout: {maxInFlight: 5, maxFailures: 2}
`, run))
}

func newFleetRepo(t *testing.T, n int) setFleetRepo {
	f := setFleetRepo{t: t, dir: t.TempDir()}
	f.write("templates/image.yaml", "version: \"0.1\"\nname: image\nglobal_timeout: 600\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n      - {name: write-image, image: image:v1, timeout: 600}\n")
	for i := 1; i <= n; i++ {
		f.write(fmt.Sprintf("hardware/node-%03d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%03d, labels: {rack: r7}}\nspec: {interfaces: [{dhcp: {mac: \"52:54:00:02:00:%02x\"}}]}\n", i, i))
	}
	f.set(1)
	return f
}

// simulateWorkers runs one worker per machine speaking the worker protocol
// over HTTP: each action runs for a moment, then succeeds, or fails when
// fail says so. They stop with ctx; the returned wait waits for them.
func simulateWorkers(ctx context.Context, t *testing.T, c *client.Client, n int, fail func(hw string, run int) bool) (wait func()) {
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			for ctx.Err() == nil {
				a, err := c.NextAction(ctx, id, time.Second)
				if err != nil || a == nil {
					continue
				}
				rep := client.WorkerReport{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: state.RunRunning}
				if c.ReportAction(ctx, id, rep) != nil {
					continue
				}
				time.Sleep(30 * time.Millisecond) // the action's work: runs overlap
				rep.State = state.RunSuccess
				if fail(id, a.Run) {
					rep.State, rep.Message = state.RunFailed, "disk write error"
				}
				_ = c.ReportAction(ctx, id, rep)
			}
		}(fmt.Sprintf("node-%03d", i))
	}
	return wg.Wait
}

// setEvents reads every event of the log in order.
func allEvents(t *testing.T, st state.Store) []state.Event {
	t.Helper()
	var out []state.Event
	from := uint64(0)
	for {
		evs, err := st.Events(context.Background(), state.EventQuery{From: from, Limit: 1000})
		require.NoError(t, err)
		out = append(out, evs...)
		if len(evs) < 1000 {
			return out
		}
		from = evs[len(evs)-1].Seq + 1
	}
}

// maxInFlight replays the run-state events of one run number of the set's
// workflows and returns the most runs that were PREPARING or RUNNING at
// once, and the sequence numbers at which runs started.
func maxInFlight(evs []state.Event, run int) (most int, starts []uint64) {
	in := map[string]bool{}
	for _, ev := range evs {
		if ev.Type != state.EventRunState || ev.Run != run || !strings.HasPrefix(ev.Name, "reimage-") {
			continue
		}
		switch {
		case ev.State == state.RunPreparing || ev.State == state.RunRunning:
			if !in[ev.Name] {
				starts = append(starts, ev.Seq)
			}
			in[ev.Name] = true
		case ev.State.Terminal():
			delete(in, ev.Name)
		}
		most = max(most, len(in))
	}
	return most, starts
}

func setRunStates(t *testing.T, st state.Store, run int) map[state.RunState]int {
	t.Helper()
	out := map[state.RunState]int{}
	page, err := st.ListRuns(context.Background(), state.RunQuery{Limit: 1000})
	require.NoError(t, err)
	for _, r := range page.Runs {
		if r.Number == run && strings.HasPrefix(r.Workflow, "reimage-") {
			out[r.State]++
		}
	}
	return out
}

// TestWorkflowSetRollout: a set over 50 machines with maxInFlight 5 never
// has more than 5 running at any moment (checked over every run-state
// event of the log, not by sampling) and all 50 succeed. Then its run is
// bumped with 3 machines failing and maxFailures 2: the set pauses after
// the third failure, no run starts while it is paused, and a resume
// through the API lets the rest finish.
func TestWorkflowSetRollout(t *testing.T) {
	const n = 50
	repo := newFleetRepo(t, n)
	m := MustRunMain(t, repo.dir)
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	failing := map[string]bool{"node-012": true, "node-023": true, "node-034": true}
	wait := simulateWorkers(ctx, t, c, n, func(hw string, run int) bool { return run == 2 && failing[hw] })
	defer func() { cancel(); wait() }()

	require.Eventually(t, func() bool { return setRunStates(t, m.Store, 1)[state.RunSuccess] == n }, 60*time.Second, 100*time.Millisecond)
	most, starts := maxInFlight(allEvents(t, m.Store), 1)
	require.Len(t, starts, n)
	require.Equal(t, 5, most, "never more than maxInFlight running, and the waves are full")
	ws, err := c.WorkflowSet(ctx, "", "reimage")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"SUCCESS": n}, ws.Status.Rollout.States)
	require.Equal(t, 10, ws.Status.Rollout.Wave)
	require.Equal(t, 2, ws.Status.Rollout.FailureBudget)

	// Run 2, with three machines failing.
	repo.set(2)
	require.NoError(t, m.Loop.Sync(ctx))
	require.Eventually(t, func() bool {
		ws, err := c.WorkflowSet(ctx, "", "reimage")
		return err == nil && ws.Status.Rollout.Paused && ws.Status.Rollout.States["RUNNING"] == 0 && ws.Status.Rollout.States["PREPARING"] == 0
	}, 60*time.Second, 100*time.Millisecond)
	time.Sleep(time.Second) // five engine ticks: nothing may start while paused
	ws, err = c.WorkflowSet(ctx, "", "reimage")
	require.NoError(t, err)
	require.Equal(t, []string{"node-012", "node-023", "node-034"}, ws.Status.Rollout.Failed)
	require.Equal(t, -1, ws.Status.Rollout.FailureBudget)
	require.Positive(t, ws.Status.Rollout.States["PENDING"], "machines still wait")
	fams := scrape(t, m)
	require.Equal(t, 1.0, fams.Value("tink_workflowset_paused", "set", "reimage"))
	require.Len(t, fams.Series("tink_workflowset_failure_budget", "set", "reimage"), 1)
	require.Equal(t, -1.0, fams.Value("tink_workflowset_failure_budget", "set", "reimage"))
	require.Equal(t, 3.0, fams.Value("tink_workflowset_machines", "set", "reimage", "state", "FAILED"))

	evs := allEvents(t, m.Store)
	var failures []uint64
	var pause uint64
	for _, ev := range evs {
		if ev.Type == state.EventRunState && ev.Run == 2 && ev.State == state.RunFailed {
			failures = append(failures, ev.Seq)
		}
		if ev.Kind == "WorkflowSet" && strings.Contains(ev.Message, "paused") {
			require.Zero(t, pause, "paused once")
			pause = ev.Seq
			require.Contains(t, ev.Message, "workflow set reimage paused: 3 machines failed (node-012, node-023, node-034), more than maxFailures 2")
		}
	}
	require.Len(t, failures, 3)
	require.Greater(t, pause, failures[2], "the set pauses after the third failure")
	_, starts = maxInFlight(evs, 2)
	for _, s := range starts {
		require.Less(t, s, pause, "no run starts once the set is paused")
	}
	// Between the third failure and the pause, at most the runs the gate
	// had already let through in that engine step start.
	late := 0
	for _, s := range starts {
		if s > failures[2] {
			late++
		}
	}
	require.LessOrEqual(t, late, 5)

	// Resume: the rest run, in waves again.
	ws, err = c.ResumeWorkflowSet(ctx, "", "reimage")
	require.NoError(t, err)
	require.False(t, ws.Status.Rollout.Paused)
	require.Equal(t, 2, ws.Status.Rollout.FailureBudget, "the failures a resume accepts no longer count")
	require.Eventually(t, func() bool { return setRunStates(t, m.Store, 2)[state.RunSuccess] == n-3 }, 60*time.Second, 100*time.Millisecond)
	evs = allEvents(t, m.Store)
	most, starts = maxInFlight(evs, 2)
	require.Len(t, starts, n)
	require.LessOrEqual(t, most, 5)
	resumed := false
	for _, ev := range evs {
		if ev.Kind == "WorkflowSet" && strings.Contains(ev.Message, "resumed by api:anonymous") {
			resumed = true
			require.Contains(t, ev.Message, "3 failed machines are accepted (node-012, node-023, node-034)")
		}
	}
	require.True(t, resumed)
}
