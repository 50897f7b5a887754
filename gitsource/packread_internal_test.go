package gitsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	gitcache "github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestPackReaderReadsWhatGoGitReads: every tree of a cache (whole or a
// delta, in the first pack or a later one) read through packReader is
// what go-git reads, or left to go-git; large trees are read directly. A
// pack whose bytes changed under the index is caught by the hash.
func TestPackReaderReadsWhatGoGitReads(t *testing.T) {
	ctx := context.Background()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 1000 {
		files[fmt.Sprintf("hardware/n%04d.yaml", i)] = fmt.Sprintf("name: n%04d\n", i)
		files[fmt.Sprintf("sub/%d/x.yaml", i%50)] = fmt.Sprintf("v: %d\n", i)
	}
	repo.Commit("fleet", files)
	cache := t.TempDir()
	g, err := NewGit(Config{Repo: repo.FileURL(), CacheDir: cache})
	require.NoError(t, err)
	_, err = g.Snapshot(ctx)
	require.NoError(t, err)
	for i := range 3 {
		repo.Commit("one file", map[string]string{"hardware/n0007.yaml": fmt.Sprintf("name: n0007\nv: %d\n", i)})
		g.Trigger()
		require.NoError(t, g.sync(ctx))
	}

	r, err := git.Open(cacheStorage(g.cacheDir, gitcache.NewObjectLRUDefault()), nil)
	require.NoError(t, err)
	defer closeStorer(r)
	p := newPackReader(g.cacheDir)
	defer p.close()
	p.refresh()
	require.Len(t, p.packs, 4, "the first fetch's pack and one a commit")
	trees, err := r.TreeObjects()
	require.NoError(t, err)
	direct, total := 0, 0
	require.NoError(t, trees.ForEach(func(tr *object.Tree) error {
		total++
		want, err := readTree(r.Storer, nil, tr.Hash)
		require.NoError(t, err)
		got, err := p.readTree(tr.Hash)
		if err == nil {
			direct++
			require.Equal(t, want, got, "tree %s", tr.Hash)
		} else {
			require.ErrorIs(t, err, errNotHere)
		}
		return nil
	}))
	require.Positive(t, direct)
	t.Logf("%d of %d trees read directly", direct, total)

	// Not a tree, or not there.
	head, err := r.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true)
	require.NoError(t, err)
	_, err = p.readTree(head.Hash())
	require.ErrorIs(t, err, errNotHere, "a commit")
	_, err = p.readTree(plumbing.NewHash("0123456789012345678901234567890123456789"))
	require.ErrorIs(t, err, errNotHere)

	// Bytes that no longer hash to the tree: flip one in every pack's
	// object data.
	c, err := r.CommitObject(head.Hash())
	require.NoError(t, err)
	tree, err := c.Tree()
	require.NoError(t, err)
	e, err := tree.FindEntry("hardware")
	require.NoError(t, err)
	_, err = p.readTree(e.Hash)
	require.NoError(t, err)
	p.close()
	packs, err := filepath.Glob(filepath.Join(g.cacheDir, "objects", "pack", "*.pack"))
	require.NoError(t, err)
	for _, path := range packs {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		for i := 40; i < len(b)-40; i += 97 {
			b[i] ^= 0x20
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))
	}
	p.refresh()
	_, err = p.readTree(e.Hash)
	require.ErrorIs(t, err, errNotHere)
}
