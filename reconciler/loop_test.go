package reconciler_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

func writeRepo(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
}

func waitApplied(t *testing.T, st state.Store, pred func(*state.SyncStatus) bool) *state.SyncStatus {
	t.Helper()
	var last *state.SyncStatus
	require.Eventually(t, func() bool {
		s, err := st.SyncStatus(context.Background())
		require.NoError(t, err)
		last = s
		return pred(s)
	}, 10*time.Second, 20*time.Millisecond, "sync status: %+v", last)
	return last
}

// TestLoopWithDirectory: a watched directory is reconciled on start and
// after every edit; suspend stops applying, resume catches up; Sync runs
// at once.
func TestLoopWithDirectory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	files := map[string][]byte{}
	for name, f := range repo(2) {
		files[name] = f.Data
	}
	writeRepo(t, dir, files)

	st := MustOpenStore(t)
	src, err := gitsource.NewDir(gitsource.Config{Repo: dir})
	require.NoError(t, err)
	loop := reconciler.NewLoop(reconciler.New(reconciler.Config{Store: st}), src, 0)
	srcDone := make(chan error, 1)
	loopDone := make(chan error, 1)
	go func() { srcDone <- src.Run(ctx) }()
	go func() { loopDone <- loop.Run(ctx) }()

	first := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision != "" })
	require.True(t, loop.Ready())
	require.Contains(t, first.LastAppliedRevision, "dir@sha256:")

	// An edit is applied without asking.
	writeRepo(t, dir, map[string][]byte{"hardware/node-03.yaml": []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-03}
spec: {interfaces: [{dhcp: {mac: "52:54:00:00:00:03"}}]}
`)})
	second := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision != first.LastAppliedRevision })
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-03"})
	require.NoError(t, err)

	// Suspended: an edit is not applied, and Sync says why.
	require.NoError(t, loop.Suspend(ctx, state.APIUser("alice")))
	require.NoError(t, os.Remove(filepath.Join(dir, "hardware", "node-03.yaml")))
	writeRepo(t, dir, map[string][]byte{"hardware/node-04.yaml": []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-04}
spec: {interfaces: [{dhcp: {mac: "52:54:00:00:00:04"}}]}
`)})
	err = loop.Sync(ctx)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	time.Sleep(400 * time.Millisecond)
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err), "nothing applied while suspended")

	// Resume: the latest revision applies.
	require.NoError(t, loop.Resume(ctx, state.APIUser("alice")))
	waitApplied(t, st, func(s *state.SyncStatus) bool {
		return s.LastAppliedRevision != second.LastAppliedRevision && !s.Suspended
	})
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.NoError(t, err)

	// Sync now runs at once and reports a broken repository.
	writeRepo(t, dir, map[string][]byte{"hardware/node-05.yaml": []byte("kind: Hardwre\n")})
	err = loop.Sync(ctx)
	require.Equal(t, state.EINVALID, state.ErrorCode(err))
	require.Contains(t, state.ErrorMessage(err), `unknown kind "Hardwre"`)

	evs, err := st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventSync}}})
	require.NoError(t, err)
	var suspended bool
	for _, e := range evs {
		if e.Actor == state.APIUser("alice") && e.Message == "reconciliation suspended: new revisions are not applied until resumed" {
			suspended = true
		}
	}
	require.True(t, suspended, "suspend is an event naming who asked")

	cancel()
	require.NoError(t, <-loopDone)
	<-srcDone
}
