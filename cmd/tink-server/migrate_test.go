package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// fillStore writes what a site's store holds: objects of several kinds, a
// deleted one, runs that moved through states, extra events, a sync status,
// and a log whose oldest events retention removed.
func fillStore(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	for i := range 30 {
		_, err := s.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("node-%02d", i),
			Labels: map[string]string{"rack": fmt.Sprint(i % 3)}, Spec: json.RawMessage(`{"interfaces":[]}`), Source: state.SourceGit,
			Revision: "main@sha1:1", File: fmt.Sprintf("hardware/node-%02d.yaml", i)})
		require.NoError(t, err)
	}
	require.NoError(t, s.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindHardware, Name: "node-29"}, 0))
	_, err := s.PutObject(ctx, state.APIUser("ada"), &state.Object{Kind: state.KindTemplate, Namespace: "ns1", Name: "ubuntu",
		Spec: json.RawMessage(`{"data":"version: \"0.1\""}`), Source: state.SourceAPI})
	require.NoError(t, err)
	for i := range 5 {
		run, err := s.PutRun(ctx, state.ActorReconciler, &state.WorkflowRun{Workflow: fmt.Sprintf("wf-%d", i), Number: 1, State: state.RunPending,
			Actions: []state.RunAction{{Task: "os", Name: "a1", Image: "img", State: state.RunPending, Worker: "node-01"}}})
		require.NoError(t, err)
		next := *run
		next.Actions = append([]state.RunAction(nil), run.Actions...)
		next.State, next.Actions[0].State, next.Actions[0].Attempt = state.RunRunning, state.RunRunning, 1
		_, err = s.PutRun(ctx, state.Worker("node-01"), &next)
		require.NoError(t, err)
	}
	_, err = s.Apply(ctx, &state.Batch{Actor: state.ActorGit, Revision: "main@sha1:2",
		Events: []state.Event{{Type: state.EventSync, Message: "applied main@sha1:2"}},
		Sync:   &state.SyncStatus{LastAttemptedRevision: "main@sha1:2", LastAppliedRevision: "main@sha1:2", LastSyncAt: time.Now(), LastDuration: time.Second}})
	require.NoError(t, err)
	n, err := s.CompactEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, 28, n, "retention removed the oldest events")
}

// dumpJSON is a store's whole content as comparable text.
func dumpJSON(t *testing.T, d state.Dumper) []string {
	t.Helper()
	var out []string
	require.NoError(t, d.Dump(context.Background(), func(item state.DumpItem) error {
		b, err := json.Marshal(item)
		out = append(out, string(b))
		return err
	}))
	return out
}

// TestMigrateRoundTrip moves a Badger store to PostgreSQL and back: every
// object, run, event (with its sequence number), the counters and the sync
// status arrive unchanged, and numbering continues where it was.
func TestMigrateRoundTrip(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	env := func(k string) string { return map[string]string{"TINK_POSTGRES_DSN": dsn}[k] }
	src := filepath.Join(t.TempDir(), "src")
	back := filepath.Join(t.TempDir(), "back")

	b, err := badger.Open(ctx, src, badger.Options{Retention: state.Retention{MaxEvents: 20, MaxAge: -1}, CompactInterval: -1})
	require.NoError(t, err)
	fillStore(t, b)
	want := dumpJSON(t, b)
	require.NoError(t, b.Close())

	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, []string{"--from", "badger:" + src, "--to", "postgres"}, env, &out, io.Discard))
	require.Contains(t, out.String(), "migrated 30 objects, 5 runs, 20 events (sequence 29..48)")
	require.Contains(t, out.String(), "sync status at main@sha1:2")
	require.NotContains(t, out.String(), pg.Password)

	p, err := postgres.Open(ctx, dsn, postgres.Options{CompactInterval: -1})
	require.NoError(t, err)
	require.Equal(t, want, dumpJSON(t, p), "PostgreSQL holds exactly what Badger held")
	bounds, err := p.EventBounds(ctx)
	require.NoError(t, err)
	require.Equal(t, state.EventBounds{Oldest: 29, Latest: 48}, bounds)
	require.NoError(t, p.Close())

	// A second migration into the same database is refused: it is not
	// empty.
	err = runMigrate(ctx, []string{"--from", "badger:" + src, "--to", "postgres"}, env, io.Discard, io.Discard)
	require.ErrorContains(t, err, "is not empty")

	out.Reset()
	require.NoError(t, runMigrate(ctx, []string{"--from", "postgres", "--to", "badger:" + back}, env, &out, io.Discard))
	require.Contains(t, out.String(), "migrated 30 objects, 5 runs, 20 events")

	b, err = badger.Open(ctx, back, badger.Options{CompactInterval: -1})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, want, dumpJSON(t, b), "Badger -> PostgreSQL -> Badger keeps everything")
	res, err := b.Apply(ctx, &state.Batch{Actor: state.ActorReconciler, Events: []state.Event{{Type: state.EventSync, Message: "after"}}})
	require.NoError(t, err)
	require.Equal(t, uint64(49), res.Events[0].Seq, "numbering continues")
	obj, err := b.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindHardware, Name: "new", Source: state.SourceGit})
	require.NoError(t, err)
	var before uint64
	for _, line := range want {
		var item state.DumpItem
		require.NoError(t, json.Unmarshal([]byte(line), &item))
		if item.Header != nil {
			before = item.Header.NextRV
		}
	}
	require.Equal(t, before, obj.ResourceVersion, "resource versions continue too")
}

// TestMigrateFlags: the endpoints are checked before anything is opened.
func TestMigrateFlags(t *testing.T) {
	ctx := context.Background()
	env := func(string) string { return "" }
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "postgres"}, "--from is required"},
		{[]string{"--from", "badger:/x", "--to", "mysql"}, `invalid value "mysql" for --to`},
		{[]string{"--from", "badger:/x", "--to", "badger:/y"}, "both badger"},
		{[]string{"--from", "badger:/x", "--to", "postgres"}, "needs --postgres-dsn-file or TINK_POSTGRES_DSN"},
	} {
		require.ErrorContains(t, runMigrate(ctx, tt.args, env, io.Discard, io.Discard), tt.want, "%v", tt.args)
	}
}
