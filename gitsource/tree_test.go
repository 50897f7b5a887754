package gitsource_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestGit_IncrementalBuildMatchesFresh: a source that builds each snapshot
// from the one before (reusing unchanged directories and files, patching
// the indexes when only contents changed) shows, after every kind of
// commit, exactly what a source with an empty cache and no history shows
// for the same commit: the same files, hashes, contents and listings. A
// stale reuse (a file, listing or directory kept from the commit before)
// fails it.
func TestGit_IncrementalBuildMatchesFresh(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	files := map[string]string{".github/ci.yml": "on: push\n", "README.md": "# fleet\n"}
	for _, top := range []string{"", "fleet/"} {
		files[top+"tink.cue"] = "prune: true\n"
		files[top+"templates/basic.yaml"] = "name: basic\n"
		files[top+"hardware/a.yaml"] = "name: a\n"
		files[top+"hardware/b.yaml"] = "name: b\n"
		files[top+"hardware/c.yaml"] = "name: c\n"
		files[top+"hardware/rack1/d.yaml"] = "name: d\n"
	}
	repo.Commit("fleet", files)
	d := gittest.ServeDaemon(t, repo.Base)
	paths := []string{"", "fleet"}
	incr := make([]*gitsource.Git, len(paths))
	for i, p := range paths {
		incr[i] = newGit(t, gitsource.Config{Repo: d.URL + repo.Name, Path: p, PollInterval: time.Hour})
		_, err := incr[i].Snapshot(context.Background())
		require.NoError(t, err)
		runSource(t, incr[i])
	}
	link := func(target, name string) func() {
		return func() {
			p := filepath.Join(repo.Work, filepath.FromSlash(name))
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Symlink(target, p))
		}
	}
	steps := []struct {
		name    string
		files   map[string]string
		before  func()
		patched bool
	}{
		{name: "one file edited", files: map[string]string{"hardware/b.yaml": "name: b\nrev: 2\n", "fleet/hardware/b.yaml": "name: b\nrev: 2\n"}, patched: true},
		{name: "files in two directories edited", files: map[string]string{"hardware/rack1/d.yaml": "name: d\nrev: 2\n", "templates/basic.yaml": "name: basic\nrev: 2\n", "fleet/hardware/rack1/d.yaml": "name: d\nrev: 2\n", "fleet/templates/basic.yaml": "name: basic\nrev: 2\n"}, patched: true},
		{name: "a hidden file edited", files: map[string]string{".github/ci.yml": "on: [push]\n"}, patched: true},
		{name: "a file edited back to an older content", files: map[string]string{"hardware/b.yaml": "name: b\n", "fleet/hardware/b.yaml": "name: b\n"}, patched: true},
		{name: "a file added", files: map[string]string{"hardware/ab.yaml": "name: ab\n", "fleet/hardware/ab.yaml": "name: ab\n"}},
		{name: "a file removed", files: map[string]string{"hardware/a.yaml": "", "fleet/hardware/a.yaml": ""}},
		{name: "a directory added", files: map[string]string{"hardware/rack2/e.yaml": "name: e\n", "fleet/hardware/rack2/e.yaml": "name: e\n"}},
		{name: "a directory removed", files: map[string]string{"hardware/rack1/d.yaml": "", "fleet/hardware/rack1/d.yaml": ""}},
		{name: "a file renamed", files: map[string]string{"hardware/c.yaml": "", "hardware/cc.yaml": "name: c\n", "fleet/hardware/c.yaml": "", "fleet/hardware/cc.yaml": "name: c\n"}},
		{name: "a file becomes a directory", files: map[string]string{"hardware/b.yaml": "", "hardware/b.yaml/x.yaml": "name: x\n", "fleet/hardware/b.yaml": "", "fleet/hardware/b.yaml/x.yaml": "name: x\n"}},
		{name: "a file becomes a link", before: func() { link("ab.yaml", "hardware/cc.yaml")(); link("ab.yaml", "fleet/hardware/cc.yaml")() }},
		{name: "a hidden directory added", files: map[string]string{"hardware/.cache/z.yaml": "name: z\n", "fleet/hardware/.cache/z.yaml": "name: z\n"}, patched: true},
	}
	var commits []string
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		commits = append(commits, repo.Commit(st.name, st.files))
		for i, p := range paths {
			check(t, st.name, incr[i], d, repo, p, commits[len(commits)-1])
			require.Equal(t, st.patched, gitsource.LastBuildPatched(incr[i]), "%s (path %q): patched", st.name, p)
		}
	}
	// A force-push back to the first edit: many changes at once.
	repo.SetBranch(commits[0])
	for i, p := range paths {
		check(t, "force-push back", incr[i], d, repo, p, commits[0])
	}
}

// check syncs incr to commit and compares it with a fresh source's
// snapshot of the same commit.
func check(t *testing.T, step string, incr *gitsource.Git, d *gittest.Daemon, repo *gittest.Repo, p, commit string) {
	t.Helper()
	incr.Trigger()
	got := waitRevision(t, incr, "main@sha1:"+commit, 10*time.Second)
	want, err := newGit(t, gitsource.Config{Repo: d.URL + repo.Name, Path: p}).Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, want.Revision, got.Revision)
	require.Equal(t, want.Files, got.Files, "%s (path %q): files", step, p)
	var names []string
	require.NoError(t, fs.WalkDir(want.FS(), ".", func(name string, e fs.DirEntry, err error) error {
		require.NoError(t, err)
		if e.IsDir() {
			wl, err := fs.ReadDir(want.FS(), name)
			require.NoError(t, err)
			gl, err := fs.ReadDir(got.FS(), name)
			require.NoError(t, err, "%s (path %q): directory %s", step, p, name)
			require.Equal(t, listing(t, wl), listing(t, gl), "%s (path %q): listing of %s", step, p, name)
			return nil
		}
		names = append(names, name)
		require.Equal(t, readAll(t, want, name), readAll(t, got, name), "%s (path %q): %s", step, p, name)
		return nil
	}))
	require.NoError(t, fstest.TestFS(got.FS(), names...), "%s (path %q)", step, p)
}

// listing is a directory's entries with what they say of themselves.
func listing(t *testing.T, es []fs.DirEntry) []string {
	t.Helper()
	var out []string
	for _, e := range es {
		info, err := e.Info()
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s dir=%v size=%d mode=%v", e.Name(), e.IsDir(), info.Size(), info.Mode()))
	}
	return out
}
