package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/leader"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/postgres"
)

// Several replicas on one store (--store postgres): every replica serves
// the API and workers; one leader, elected through a lease in the database
// (package leader), runs the Git sync loop, the workflow timers, BMC actions
// and the BMC power poll. With Badger there is one process, which always
// leads.

// openReplica returns the leader elector when the store is shared, and
// registers tink_replica_leader; nil with Badger.
func (m *Main) openReplica(reg *prometheus.Registry) (*leader.Elector, error) {
	pg, ok := m.Store.(*postgres.Store)
	if !ok {
		return nil, nil
	}
	name := m.Config.ReplicaName
	if name == "" {
		name, _ = os.Hostname()
	}
	if name == "" {
		return nil, fmt.Errorf("--replica-name is required when the host has no name")
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tink_replica_leader",
		Help: "1 on the replica that leads (runs the Git sync, timers, BMC actions and prune), 0 on the others.",
	}, []string{"replica"})
	if err := reg.Register(gauge); err != nil {
		return nil, err
	}
	g := gauge.WithLabelValues(name)
	el := leader.New(leader.Config{Leases: pg, Name: name, TTL: m.Config.LeaderLease, Log: m.log,
		OnChange: func(leading bool) {
			if leading {
				g.Set(1)
			} else {
				g.Set(0)
			}
		}})
	return el, nil
}

// leaderFunc is the engine's leadership hook: nil (always lead) without an
// elector.
func leaderFunc(el *leader.Elector) func() (context.Context, bool) {
	if el == nil {
		return nil
	}
	return el.Leader
}

// replicaStatus is /v1/status's replica, nil without an elector.
func replicaStatus(el *leader.Elector) func() client.ReplicaStatus {
	if el == nil {
		return nil
	}
	return func() client.ReplicaStatus { return client.ReplicaStatus{Name: el.Name(), Leader: el.IsLeader()} }
}

// runLeaderWork starts what must run once: the reconcile loop and the BMC
// power poll, on the leader only, for as long as each term lasts.
func (m *Main) runLeaderWork(ctx context.Context) {
	work := func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := m.Loop.Run(ctx); err != nil {
				m.log.Error("reconcile loop stopped", "err", err)
			}
		})
		if m.Elector != nil {
			wg.Go(func() { m.followSyncRequests(ctx) })
		}
		if m.Config.BMCPollInterval > 0 {
			wg.Go(func() { m.BMC.Poll(ctx, m.Config.BMCPollInterval, bmcHardware(m.Store)) })
		}
		wg.Wait()
	}
	if m.Elector == nil {
		m.goRun("leader work", func() error { work(ctx); return nil })
		return
	}
	m.goRun("leader election", func() error { return m.Elector.Run(ctx) })
	m.goRun("leader work", func() error { m.Elector.Lead(ctx, work); return nil })
}

// replicaSyncer is the API's Syncer on a replica: /readyz also depends on
// the store's database, and a sync asked of a follower is run by the
// leader.
type replicaSyncer struct {
	*reconciler.Loop
	store  state.Store
	health *storeHealth
	el     *leader.Elector
	// synced is set once the store shows a sync by any replica.
	synced *atomic.Bool
}

// Ready implements api.Syncer: the database answers, and this replica's
// first sync has run, or, on a follower, the leader has synced at least
// once.
func (r replicaSyncer) Ready() bool {
	if !r.health.Healthy() {
		return false
	}
	if r.Loop.Ready() {
		return true
	}
	if r.el == nil || r.el.IsLeader() {
		return false
	}
	if r.synced.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := r.store.SyncStatus(ctx)
	if err == nil && !st.LastSyncAt.IsZero() {
		r.synced.Store(true)
	}
	return r.synced.Load()
}

// Sync implements api.Syncer. On a follower it waits for the leader's
// next sync: the API wrote its request to the event log before calling
// Sync, and the leader follows those requests (followSyncRequests).
func (r replicaSyncer) Sync(ctx context.Context) error {
	if r.el == nil || r.el.IsLeader() {
		return r.Loop.Sync(ctx)
	}
	before, err := r.store.SyncStatus(ctx)
	if err != nil {
		return err
	}
	if before.Suspended {
		return state.Errorf(state.ECONFLICT, "reconciliation is suspended; resume it first")
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		st, err := r.store.SyncStatus(ctx)
		if err != nil {
			return err
		}
		if !st.LastSyncAt.Equal(before.LastSyncAt) {
			return nil
		}
	}
}

// followSyncRequests runs, on the leader, the syncs that API callers asked
// of other replicas.
func (m *Main) followSyncRequests(term context.Context) {
	w, err := m.Store.Watch(term, 0, state.EventFilter{Types: []state.EventType{state.EventSync}})
	if err != nil {
		m.log.Warn("follow sync requests", "err", err)
		return
	}
	defer w.Close()
	for ev := range w.Events() {
		if !ev.Actor.IsAPI() || !strings.HasPrefix(ev.Message, "sync requested") {
			continue
		}
		if err := m.Loop.Sync(term); err != nil && term.Err() == nil {
			m.log.Warn("sync requested through another replica", "err", err)
		}
	}
}
