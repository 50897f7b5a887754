package gitsource

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestObjectCacheEmptiedAfterSync: between syncs the open cache keeps no
// decoded blobs: the snapshot holds their bytes already, and go-git's
// object cache would otherwise hold up to objectCacheSize of them more
// (16 MB of heap at 10,000 machines) until the next sync.
func TestObjectCacheEmptiedAfterSync(t *testing.T) {
	ctx := context.Background()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("hardware/n%04d.yaml", i)] = fmt.Sprintf("name: n%04d\n", i)
	}
	repo.Commit("fleet", files)
	g, err := NewGit(Config{Repo: repo.FileURL(), CacheDir: t.TempDir()})
	require.NoError(t, err)
	g.keepOpen = true // as Run keeps it
	t.Cleanup(g.closeCache)
	for i := range 2 {
		if i > 0 {
			repo.Commit("one file", map[string]string{"hardware/n0007.yaml": "name: n0007\nv: 1\n"})
			g.Trigger()
		}
		require.NoError(t, g.sync(ctx))
		require.NotNil(t, g.repo, "the cache stays open")
		snap := g.t.snapshot()
		require.NotNil(t, snap)
		require.Len(t, snap.Files, 200)
		for _, f := range snap.Files {
			_, cached := g.objects.Get(plumbing.NewHash(f.Hash))
			require.False(t, cached, "sync %d: %s's blob is still cached", i, f.Path)
		}
		// The cache still works: an object read now is decoded and kept.
		_, err := g.repo.BlobObject(plumbing.NewHash(snap.Files[0].Hash))
		require.NoError(t, err)
		_, cached := g.objects.Get(plumbing.NewHash(snap.Files[0].Hash))
		require.True(t, cached)
	}
}
