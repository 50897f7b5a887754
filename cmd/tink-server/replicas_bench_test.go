package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema/schematest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// storeSetups are the configurations the replica benchmarks compare in one
// run: Badger (one process), and PostgreSQL with one and three replicas.
var storeSetups = []struct {
	name     string
	postgres bool
	replicas int
}{
	{"badger", false, 1},
	{"postgres-1", true, 1},
	{"postgres-3", true, 3},
}

// startSetup starts the replicas of a setup on repo.
func startSetup(b *testing.B, pg *pgtest.Server, repo string, postgres bool, replicas int) []*Main {
	b.Helper()
	if !postgres {
		m := NewMain(io.Discard, io.Discard)
		require.NoError(b, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", b.TempDir(), "--repo", repo}))
		require.NoError(b, m.Open(context.Background()))
		return []*Main{m}
	}
	dsn := pg.NewDatabase(b)
	var ms []*Main
	for i := range replicas {
		m := NewMain(io.Discard, io.Discard)
		require.NoError(b, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", b.TempDir(), "--repo", repo,
			"--store", "postgres", "--replica-name", fmt.Sprintf("r%d", i+1), "--leader-lease", "5s"}))
		m.Getenv = func(k string) string {
			if k == envPostgresDSN {
				return dsn
			}
			return ""
		}
		require.NoError(b, m.Open(context.Background()))
		ms = append(ms, m)
	}
	return ms
}

// The PostgreSQL of these benchmarks keeps production durability (fsync on,
// synchronous commit), as Badger's writes are synced.

// BenchmarkReplicaWorkers: as BenchmarkWorkers (simulated workers speaking
// the worker protocol over HTTP on loopback, instant actions, every
// transition durable), 300 machines x 10 actions, on Badger and on
// PostgreSQL with one and three replicas; with three, each worker's
// requests go round-robin across them, as behind a load balancer.
func BenchmarkReplicaWorkers(b *testing.B) {
	const machines, actions = 300, 10
	pg := pgtest.Start(b, pgtest.Durable())
	for _, setup := range storeSetups {
		b.Run(setup.name, func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				repo := b.TempDir()
				writeFleet(b, repo, machines, actions)
				ms := startSetup(b, pg, repo, setup.postgres, setup.replicas)
				ctx := context.Background()
				require.Eventually(b, func() bool {
					p, err := ms[0].Store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunRunning}})
					return err == nil && len(p.Runs) == machines
				}, 3*time.Minute, 50*time.Millisecond)
				var cs []*client.Client
				for _, m := range ms {
					c, err := client.New("http://"+m.Addr(), "", nil)
					require.NoError(b, err)
					cs = append(cs, c)
				}
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, machines)
				for i := range machines {
					w := &simWorker{id: fmt.Sprintf("node-%04d", i), clients: func() []*client.Client { return cs }, turn: i, done: map[int]bool{}}
					wg.Go(func() {
						if err := w.run(ctx, actions); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				close(errs)
				for err := range errs {
					require.NoError(b, err)
				}
				b.ReportMetric(float64(2*machines*actions)/elapsed.Seconds(), "transitions/s")
				for _, m := range ms {
					require.NoError(b, m.Close())
				}
			}
		})
	}
}

// writeFleet writes fleetRepo's files into repo for a benchmark.
func writeFleet(b *testing.B, repo string, machines, actions int) {
	b.Helper()
	tmpl := "version: \"0.1\"\nname: instant\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n"
	for i := range actions {
		tmpl += fmt.Sprintf("      - {name: step-%d, image: instant:v1, timeout: 600}\n", i)
	}
	files := map[string]string{"templates/instant.yaml": tmpl}
	for i := range machines {
		mac := fmt.Sprintf("52:54:00:02:%02x:%02x", i>>8, i&0xff)
		files[fmt.Sprintf("hardware/node-%04d.yaml", i)] = fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%04d}\nspec: {interfaces: [{dhcp: {mac: %q}}]}\n", i, mac)
		files[fmt.Sprintf("workflows/wf-%04d.yaml", i)] = fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf-%04d}\nspec: {templateRef: instant, hardwareRef: node-%04d, hardwareMap: {device_1: %q}}\n", i, i, mac)
	}
	writeFilesB(b, repo, files)
}

// BenchmarkReplicaFleetSync: the first sync of a 10,000-machine fleet
// (20,100 files in a directory repository) into an empty store, from the
// server's start to the revision applied, on Badger and on PostgreSQL with
// one and three replicas (the leader syncs; the others serve).
func BenchmarkReplicaFleetSync(b *testing.B) {
	pg := pgtest.Start(b, pgtest.Durable())
	repo := b.TempDir()
	writeFilesB(b, repo, schematest.Fleet(10_000, 100))
	for _, setup := range storeSetups {
		b.Run(setup.name, func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				start := time.Now()
				ms := startSetup(b, pg, repo, setup.postgres, setup.replicas)
				require.Eventually(b, func() bool {
					st, err := ms[0].Store.SyncStatus(context.Background())
					return err == nil && st.LastAppliedRevision != ""
				}, 5*time.Minute, 20*time.Millisecond)
				b.ReportMetric(time.Since(start).Seconds(), "s/full-sync")
				for _, m := range ms {
					require.NoError(b, m.Close())
				}
			}
		})
	}
}

// writeFilesB is writeFiles for a benchmark.
func writeFilesB(b *testing.B, dir string, files map[string]string) {
	b.Helper()
	for name, content := range files {
		require.NoError(b, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(b, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}
