package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// fleetRepo writes a repository of machines, each with a workflow of
// actions instant actions, and returns its directory.
func fleetRepo(t *testing.T, machines, actions int) string {
	t.Helper()
	repo := t.TempDir()
	var tmpl strings.Builder
	tmpl.WriteString("version: \"0.1\"\nname: instant\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n")
	for i := range actions {
		fmt.Fprintf(&tmpl, "      - {name: step-%d, image: instant:v1, timeout: 600}\n", i)
	}
	writeRepoFile(t, repo, "templates/instant.yaml", tmpl.String())
	for i := range machines {
		addMachine(t, repo, i)
	}
	return repo
}

func addMachine(t *testing.T, repo string, i int) {
	t.Helper()
	mac := fmt.Sprintf("52:54:00:02:%02x:%02x", i>>8, i&0xff)
	writeRepoFile(t, repo, fmt.Sprintf("hardware/node-%04d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%04d}\nspec: {interfaces: [{dhcp: {mac: %q}}]}\n", i, mac))
	writeRepoFile(t, repo, fmt.Sprintf("workflows/wf-%04d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf-%04d}\nspec: {templateRef: instant, hardwareRef: node-%04d, hardwareMap: {device_1: %q}}\n", i, i, mac))
}

func writeRepoFile(t *testing.T, repo, name, content string) {
	t.Helper()
	p := filepath.Join(repo, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// runReplica starts one replica on the shared database.
func runReplica(t *testing.T, repo, dsnFile, name string, extra ...string) *Main {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	args := append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--repo", repo, "--store", "postgres",
		"--postgres-dsn-file", dsnFile, "--replica-name", name, "--leader-lease", "3s"}, extra...)
	require.NoError(t, m.ParseFlags(args))
	require.NoError(t, m.Open(context.Background()))
	return m
}

// leaders returns the replicas whose /v1/status says they lead.
func leaders(t *testing.T, ms []*Main) []*Main {
	t.Helper()
	var out []*Main
	for _, m := range ms {
		c, err := client.New("http://"+m.Addr(), "", nil)
		require.NoError(t, err)
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		require.NotNil(t, st.Replica)
		if st.Replica.Leader {
			out = append(out, m)
		}
	}
	return out
}

// simWorker is a simulated worker speaking the real protocol; each of its
// requests goes to the next replica in turn, as a round-robin load
// balancer sends them.
type simWorker struct {
	id      string
	clients func() []*client.Client
	turn    int
	// done counts actions reported SUCCESS; handedTwice records an action
	// handed out again after it was reported done (it would have run
	// twice).
	done        map[int]bool
	handedTwice []string
}

func (w *simWorker) next() *client.Client {
	cs := w.clients()
	w.turn++
	return cs[w.turn%len(cs)]
}

// run works until the worker's run has all its actions done.
func (w *simWorker) run(ctx context.Context, actions int) error {
	for len(w.done) < actions {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d of %d actions done: %w", w.id, len(w.done), actions, ctx.Err())
		}
		a, err := w.next().NextAction(ctx, w.id, 2*time.Second)
		if err != nil {
			// A replica going away mid-request: the worker retries,
			// as tink-worker does.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if a == nil {
			continue
		}
		if w.done[a.Action] {
			w.handedTwice = append(w.handedTwice, fmt.Sprintf("%s action %d attempt %d", a.Workflow, a.Action, a.Attempt))
			continue
		}
		for _, s := range []state.RunState{state.RunRunning, state.RunSuccess} {
			rep := client.WorkerReport{Workflow: a.Workflow, Run: a.Run, Action: a.Action, Attempt: a.Attempt, State: s}
			// As tink-worker does, a report that could not be delivered
			// (a replica gone, the database restarting) is sent again
			// until it is taken; the context bounds it.
			for {
				err := w.next().ReportAction(ctx, w.id, rep)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return fmt.Errorf("%s: report %s of action %d: %w", w.id, s, a.Action, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		w.done[a.Action] = true
	}
	return nil
}

// TestReplicasShareTheWork runs three replicas on one PostgreSQL: one
// leads; workers whose requests go round-robin across the replicas finish
// every action exactly once; the leader shuts down mid-run and another takes
// over within the lease, applies a commit made after the first one left,
// and every run ends SUCCESS with a gap-free event log.
func TestReplicasShareTheWork(t *testing.T) {
	const machines, actions = 20, 10
	pg := pgtest.Start(t)
	dsn := dsnFile(t, pg.NewDatabase(t))
	repo := fleetRepo(t, machines, actions)

	var mu sync.Mutex
	replicas := []*Main{}
	for i := range 3 {
		replicas = append(replicas, runReplica(t, repo, dsn, fmt.Sprintf("r%d", i+1)))
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range replicas {
			require.NoError(t, m.Close())
		}
	})
	for _, m := range replicas {
		waitReady(t, m)
	}
	require.Eventually(t, func() bool { return len(leaders(t, replicas)) == 1 }, 15*time.Second, 50*time.Millisecond, "one leader")
	for _, m := range replicas {
		want := "0"
		if len(leaders(t, []*Main{m})) == 1 {
			want = "1"
		}
		resp, err := http.Get("http://" + m.Addr() + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Contains(t, string(body), fmt.Sprintf("tink_replica_leader{replica=%q} %s", m.Config.ReplicaName, want), "the metric says who leads")
	}
	ctx := context.Background()
	store := replicas[0].Store
	require.Eventually(t, func() bool {
		p, err := store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunRunning}})
		return err == nil && len(p.Runs) == machines
	}, time.Minute, 50*time.Millisecond, "the leader started every run")

	clients := func() []*client.Client {
		mu.Lock()
		defer mu.Unlock()
		var cs []*client.Client
		for _, m := range replicas {
			c, err := client.New("http://"+m.Addr(), "", nil)
			require.NoError(t, err)
			cs = append(cs, c)
		}
		return cs
	}
	var progress atomic.Int64
	workers := make([]*simWorker, machines)
	var wg sync.WaitGroup
	errs := make(chan error, machines+1)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for i := range machines {
		workers[i] = &simWorker{id: fmt.Sprintf("node-%04d", i), clients: clients, turn: i, done: map[int]bool{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := workers[i]
			for len(w.done) < actions {
				before := len(w.done)
				if err := w.run(wctx, before+1); err != nil {
					errs <- err
					return
				}
				progress.Add(1)
			}
		}()
	}

	// Mid-run, the leader goes away; the others go on serving and one
	// takes over.
	require.Eventually(t, func() bool { return progress.Load() >= machines*actions/3 }, 2*time.Minute, 10*time.Millisecond)
	mu.Lock()
	old := leaders(t, replicas)[0]
	var rest []*Main
	for _, m := range replicas {
		if m != old {
			rest = append(rest, m)
		}
	}
	replicas = rest
	mu.Unlock()
	gone := time.Now()
	require.NoError(t, old.Close())
	require.Eventually(t, func() bool { return len(leaders(t, rest)) == 1 }, 15*time.Second, 20*time.Millisecond, "a new leader")
	t.Logf("new leader after %s", time.Since(gone).Round(time.Millisecond))

	// A commit after the leader left: the new leader applies it.
	addMachine(t, repo, machines)
	extra := &simWorker{id: fmt.Sprintf("node-%04d", machines), clients: clients, done: map[int]bool{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := extra.run(wctx, actions); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, w := range append(workers, extra) {
		require.Empty(t, w.handedTwice, "an action handed out after it was done")
	}
	require.Eventually(t, func() bool {
		p, err := rest[0].Store.ListRuns(ctx, state.RunQuery{})
		if err != nil || len(p.Runs) != machines+1 {
			return false
		}
		for _, r := range p.Runs {
			if r.State != state.RunSuccess {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every run SUCCESS")
	p, err := rest[0].Store.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	for _, r := range p.Runs {
		for _, a := range r.Actions {
			require.Equal(t, 1, a.Attempt, "%s action %s ran exactly once", r.Key(), a.Name)
		}
	}
	// tink sync sent to a follower is run by the leader.
	var follower *Main
	for _, m := range rest {
		if len(leaders(t, []*Main{m})) == 0 {
			follower = m
		}
	}
	require.NotNil(t, follower)
	before, err := follower.Store.SyncStatus(ctx)
	require.NoError(t, err)
	fc, err := client.New("http://"+follower.Addr(), "", nil)
	require.NoError(t, err)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	_, err = fc.Sync(sctx)
	require.NoError(t, err)
	after, err := follower.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.True(t, after.LastSyncAt.After(before.LastSyncAt), "the leader synced for the follower")

	bounds, err := rest[0].Store.EventBounds(ctx)
	require.NoError(t, err)
	evs, err := rest[0].Store.Events(ctx, state.EventQuery{Limit: 100000})
	require.NoError(t, err)
	require.Len(t, evs, int(bounds.Latest), "no gap in the event log")
	for i, ev := range evs {
		require.Equal(t, uint64(i+1), ev.Seq)
	}
}

// TestDatabaseRestartUnderLoad stops PostgreSQL while two replicas serve
// workers: both report not ready while it is down, recover without a
// restart of their own once it is back, and every run ends SUCCESS with
// every action done once: nothing acknowledged is lost.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	const machines, actions = 10, 10
	pg := pgtest.Start(t)
	dsn := dsnFile(t, pg.NewDatabase(t))
	repo := fleetRepo(t, machines, actions)
	replicas := []*Main{runReplica(t, repo, dsn, "r1"), runReplica(t, repo, dsn, "r2")}
	t.Cleanup(func() {
		for _, m := range replicas {
			require.NoError(t, m.Close())
		}
	})
	for _, m := range replicas {
		waitReady(t, m)
	}
	ctx := context.Background()
	require.Eventually(t, func() bool {
		p, err := replicas[0].Store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunRunning}})
		return err == nil && len(p.Runs) == machines
	}, time.Minute, 50*time.Millisecond)

	var cs []*client.Client
	for _, m := range replicas {
		c, err := client.New("http://"+m.Addr(), "", nil)
		require.NoError(t, err)
		cs = append(cs, c)
	}
	var progress atomic.Int64
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	workers := make([]*simWorker, machines)
	var wg sync.WaitGroup
	errs := make(chan error, machines)
	for i := range machines {
		workers[i] = &simWorker{id: fmt.Sprintf("node-%04d", i), clients: func() []*client.Client { return cs }, turn: i, done: map[int]bool{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := workers[i]
			for len(w.done) < actions {
				if err := w.run(wctx, len(w.done)+1); err != nil {
					errs <- err
					return
				}
				progress.Add(1)
				time.Sleep(20 * time.Millisecond) // spread the work over the outage
			}
		}()
	}
	require.Eventually(t, func() bool { return progress.Load() >= machines*actions/4 }, 2*time.Minute, 10*time.Millisecond)
	pg.Stop(t)
	for _, m := range replicas {
		require.Eventually(t, func() bool { return readyz(t, m) == 503 }, 20*time.Second, 50*time.Millisecond, "not ready while the database is down")
	}
	stalled := progress.Load()
	time.Sleep(time.Second)
	pg.Resume(t)
	for _, m := range replicas {
		require.Eventually(t, func() bool { return readyz(t, m) == 200 }, 30*time.Second, 50*time.Millisecond, "ready again, without a restart")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Greater(t, progress.Load(), stalled, "work went on after the restart")
	for _, w := range workers {
		require.Empty(t, w.handedTwice)
	}
	p, err := replicas[0].Store.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	require.Len(t, p.Runs, machines)
	for _, r := range p.Runs {
		require.Equal(t, state.RunSuccess, r.State, "%s", r.Key())
		for _, a := range r.Actions {
			require.Equal(t, 1, a.Attempt, "%s: action %s handed out once", r.Key(), a.Name)
		}
	}
}
