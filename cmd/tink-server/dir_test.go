package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestDirectoryChanges: every kind of edit to a watched directory is
// reconciled: a renamed file, a file moved into a new subdirectory, a
// changed file, and a removed subdirectory (with --prune).
func TestDirectoryChanges(t *testing.T) {
	ctx := context.Background()
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	m := MustRunMain(t, repo, "--prune")
	waitReady(t, m)
	file := func(kind, name string) string {
		o, err := m.Store.GetObject(ctx, state.ObjectKey{Kind: kind, Name: name})
		if err != nil {
			return "gone"
		}
		return o.File
	}
	eventually := func(cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 5*time.Second, 10*time.Millisecond)
	}

	require.NoError(t, os.Rename(filepath.Join(repo, "hardware", "node-03.yaml"), filepath.Join(repo, "hardware", "rack-r1-node-03.yaml")))
	eventually(func() bool { return file("Hardware", "node-03") == "hardware/rack-r1-node-03.yaml" })

	require.NoError(t, os.MkdirAll(filepath.Join(repo, "hardware", "rack-r2"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(repo, "hardware", "rack-r1-node-03.yaml"), filepath.Join(repo, "hardware", "rack-r2", "node-03.yaml")))
	eventually(func() bool { return file("Hardware", "node-03") == "hardware/rack-r2/node-03.yaml" })

	b, err := os.ReadFile(filepath.Join(repo, "hardware", "rack-r2", "node-03.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "hardware", "rack-r2", "node-03.yaml"), append(b, []byte("  userData: \"#cloud-config\"\n")...), 0o644))
	eventually(func() bool {
		o, err := m.Store.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-03"})
		return err == nil && string(o.Spec) != "" && strings.Contains(string(o.Spec), "cloud-config")
	})

	require.NoError(t, os.RemoveAll(filepath.Join(repo, "hardware", "rack-r2")))
	eventually(func() bool { return file("Hardware", "node-03") == "gone" })
}
