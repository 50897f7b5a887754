package gitsource

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestSnapshotReportsChanges: a snapshot patched from the one before
// reports exactly the paths whose contents changed since it, and nothing
// to any other; one with a file added or removed reports nothing.
func TestSnapshotReportsChanges(t *testing.T) {
	ctx := context.Background()
	repo := gittest.NewRepo(t)
	repo.Commit("fleet", map[string]string{"a.yaml": "a\n", "d/b.yaml": "b\n", "d/c.yaml": "c\n", "README.md": "hi\n"})
	g, err := NewGit(Config{Repo: repo.FileURL(), CacheDir: t.TempDir()})
	require.NoError(t, err)
	next := func() *Snapshot {
		t.Helper()
		require.NoError(t, g.sync(ctx))
		s, err := g.Snapshot(ctx)
		require.NoError(t, err)
		return s
	}
	changes := func(s, since *Snapshot) ([]string, bool) {
		paths, ok := s.FS().(snapshotFS).ChangedSince(since.FS().(snapshotFS).FSToken())
		paths = slices.Clone(paths)
		slices.Sort(paths)
		return paths, ok
	}
	s1 := next()
	repo.Commit("two", map[string]string{"d/b.yaml": "b2\n", "README.md": "hello\n"})
	s2 := next()
	got, ok := changes(s2, s1)
	require.True(t, ok)
	require.Equal(t, []string{"README.md", "d/b.yaml"}, got)
	_, ok = changes(s2, s2)
	require.False(t, ok, "not made from itself")
	_, ok = changes(s1, s2)
	require.False(t, ok, "not made from a later one")

	repo.Commit("same content again", map[string]string{"a.yaml": "a\n"})
	repo.Commit("one", map[string]string{"a.yaml": "a3\n"})
	s3 := next()
	got, ok = changes(s3, s2)
	require.True(t, ok)
	require.Equal(t, []string{"a.yaml"}, got)
	_, ok = changes(s3, s1)
	require.False(t, ok, "two snapshots back")

	repo.Commit("added", map[string]string{"d/e.yaml": "e\n"})
	s4 := next()
	_, ok = changes(s4, s3)
	require.False(t, ok, "a file added")
	repo.Commit("changed after", map[string]string{"d/e.yaml": "e2\n"})
	s5 := next()
	got, ok = changes(s5, s4)
	require.True(t, ok)
	require.Equal(t, []string{"d/e.yaml"}, got)
}
