package gitsource_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// writeFiles writes files under root (an empty content removes the file).
func writeFiles(tb testing.TB, root string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if content == "" {
			require.NoError(tb, os.Remove(p))
			continue
		}
		require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(tb, os.WriteFile(p, []byte(content), 0o644))
	}
}

func newDir(tb testing.TB, cfg gitsource.Config) *gitsource.Dir {
	tb.Helper()
	d, err := gitsource.NewDir(cfg)
	require.NoError(tb, err)
	return d
}

func TestDir_Snapshot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"hardware/n1.yaml":          hw1,
		"tink.cue":                  "defaults: {}\n",
		".git/config":               "[core]\n",
		"hardware/.n1.yaml.swp":     "swap",
		"docs/.drafts/n2.yaml":      hw1,
		"templates/basic/task.yaml": "name: basic\n",
	})
	require.NoError(t, os.Symlink(filepath.Join(root, "hardware", "n1.yaml"), filepath.Join(root, "link.yaml")))
	require.NoError(t, os.Symlink(filepath.Join(root, "hardware"), filepath.Join(root, "dirlink")))
	require.NoError(t, os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "dangling.yaml")))

	d := newDir(t, gitsource.Config{Repo: root})
	snap, err := d.Snapshot(context.Background())
	require.NoError(t, err)
	hash := gittest.Git(t, root, "hash-object", "hardware/n1.yaml")
	require.Equal(t, map[string]string{
		"hardware/n1.yaml":          hash,
		"link.yaml":                 hash,
		"templates/basic/task.yaml": gittest.Git(t, root, "hash-object", "templates/basic/task.yaml"),
		"tink.cue":                  gittest.Git(t, root, "hash-object", "tink.cue"),
	}, fileMap(snap), "hashes are git's blob hashes; hidden names, links to directories and dangling links are left out")
	require.Regexp(t, regexp.MustCompile(`^dir@sha256:[0-9a-f]{64}$`), snap.Revision)
	require.Empty(t, snap.Commit)
	require.NoError(t, fstest.TestFS(snap.FS(), "hardware/n1.yaml", "link.yaml", "templates/basic/task.yaml", "tink.cue"))
	require.Equal(t, gitsource.Status{Source: root, Ref: "directory", Path: ".", Revision: snap.Revision,
		LastSync: d.Status().LastSync, LastChange: d.Status().LastChange, Checks: 1}, d.Status())

	// The revision depends on content only: a copy has the same one.
	copyRoot := t.TempDir()
	writeFiles(t, copyRoot, map[string]string{
		"hardware/n1.yaml": hw1, "link.yaml": hw1, "tink.cue": "defaults: {}\n", "templates/basic/task.yaml": "name: basic\n",
	})
	snap2, err := newDir(t, gitsource.Config{Repo: copyRoot}).Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, snap.Revision, snap2.Revision)

	// A subdirectory.
	sub, err := newDir(t, gitsource.Config{Repo: root, Path: "templates"}).Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"basic/task.yaml"}, paths(sub))

	_, err = newDir(t, gitsource.Config{Repo: root, Path: "nowhere"}).Snapshot(context.Background())
	require.ErrorContains(t, err, "nowhere")
	_, err = newDir(t, gitsource.Config{Repo: filepath.Join(root, "tink.cue")}).Snapshot(context.Background())
	require.ErrorContains(t, err, "not a directory")
}

func paths(s *gitsource.Snapshot) []string {
	var out []string
	for _, f := range s.Files {
		out = append(out, f.Path)
	}
	return out
}

// Editing the watched directory yields a new snapshot within a second, for
// files in directories that existed at start and in ones created later.
func TestDir_Watch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"hardware/n1.yaml": hw1})
	// An hour between polls: every change below is seen through fsnotify.
	d := newDir(t, gitsource.Config{Repo: root, PollInterval: time.Hour})
	first, err := d.Snapshot(context.Background())
	require.NoError(t, err)
	runSource(t, d)
	// Let Run read the directory and set its watches.
	eventually(t, 5*time.Second, func() bool { return d.Status().Checks >= 2 }, "Run's first read")

	step := func(name string, files map[string]string) *gitsource.Snapshot {
		t.Helper()
		start := time.Now()
		writeFiles(t, root, files)
		snap := waitChange(t, d, time.Second)
		t.Logf("%s: new revision after %s", name, time.Since(start).Round(time.Millisecond))
		return snap
	}

	snap := step("edit", map[string]string{"hardware/n1.yaml": hw1 + "spec: {}\n"})
	require.Equal(t, hw1+"spec: {}\n", readAll(t, snap, "hardware/n1.yaml"))
	require.NotEqual(t, first.Revision, snap.Revision)

	snap = step("new nested directory", map[string]string{"racks/r1/hardware/n2.yaml": hw1})
	require.Contains(t, paths(snap), "racks/r1/hardware/n2.yaml")

	snap = step("file in the new directory", map[string]string{"racks/r1/hardware/n3.yaml": hw1})
	require.Contains(t, paths(snap), "racks/r1/hardware/n3.yaml")

	// A directory deleted and created again at once, and a renamed one,
	// are watched again.
	require.NoError(t, os.RemoveAll(filepath.Join(root, "racks")))
	snap = step("directory replaced", map[string]string{"racks/r1/n4.yaml": hw1})
	require.Equal(t, []string{"hardware/n1.yaml", "racks/r1/n4.yaml"}, paths(snap))
	snap = step("file in the replaced directory", map[string]string{"racks/r1/n5.yaml": hw1})
	require.Contains(t, paths(snap), "racks/r1/n5.yaml")
	start := time.Now()
	require.NoError(t, os.Rename(filepath.Join(root, "racks"), filepath.Join(root, "rows")))
	snap = waitChange(t, d, time.Second)
	t.Logf("rename directory: new revision after %s", time.Since(start).Round(time.Millisecond))
	require.Contains(t, paths(snap), "rows/r1/n5.yaml")
	snap = step("file in the renamed directory", map[string]string{"rows/r1/n6.yaml": hw1})
	require.Contains(t, paths(snap), "rows/r1/n6.yaml")
	snap = step("file in the renamed directory's old name", map[string]string{"racks/n7.yaml": hw1})
	require.Contains(t, paths(snap), "racks/n7.yaml")

	snap = step("delete", map[string]string{"hardware/n1.yaml": ""})
	require.NotContains(t, paths(snap), "hardware/n1.yaml")

	start = time.Now()
	require.NoError(t, os.RemoveAll(filepath.Join(root, "racks")))
	require.NoError(t, os.RemoveAll(filepath.Join(root, "rows")))
	snap = waitChange(t, d, time.Second)
	t.Logf("remove directory: new revision after %s", time.Since(start).Round(time.Millisecond))
	require.Empty(t, snap.Files)

	// Writing the same bytes, or hidden files, changes no revision.
	writeFiles(t, root, map[string]string{"a.yaml": "a: 1\n"})
	waitChange(t, d, time.Second)
	writeFiles(t, root, map[string]string{"a.yaml": "a: 1\n", ".a.yaml.swp": "x", ".cache/x.yaml": "x"})
	noChange(t, d, 500*time.Millisecond)

	// Snapshots already handed out do not change.
	require.Equal(t, hw1, readAll(t, first, "hardware/n1.yaml"))
	require.Equal(t, []string{"hardware/n1.yaml"}, paths(first))
}

// A directory that appears after start is read once it exists.
func TestDir_Missing(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "repo")
	d := newDir(t, gitsource.Config{Repo: root, PollInterval: time.Hour, RetryMin: 20 * time.Millisecond})
	_, err := d.Snapshot(context.Background())
	require.ErrorIs(t, err, fs.ErrNotExist)
	runSource(t, d)
	eventually(t, 5*time.Second, func() bool { return d.Status().Failures >= 2 }, "retries")
	require.Contains(t, d.Status().LastError, root)

	writeFiles(t, root, map[string]string{"a.yaml": "a: 1\n"})
	snap := waitChange(t, d, 5*time.Second)
	require.Equal(t, []string{"a.yaml"}, paths(snap))
	require.Zero(t, d.Status().Failures)
	require.Empty(t, d.Status().LastError)

	// Trigger reads at once.
	checks := d.Status().Checks
	d.Trigger()
	eventually(t, 5*time.Second, func() bool { return d.Status().Checks > checks }, "trigger")
}

func TestDir_LargeFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"big.yaml": "0123456789abcdefghij", "small.yaml": "a: 1\n"})
	snap, err := newDir(t, gitsource.Config{Repo: root, MaxFileSize: 10}).Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, gitsource.File{Path: "big.yaml", Hash: gittest.Git(t, root, "hash-object", "big.yaml"), Size: 20}, snap.Files[0])
	_, err = fs.ReadFile(snap.FS(), "big.yaml")
	require.ErrorIs(t, err, gitsource.ErrTooLarge)
	require.Equal(t, "a: 1\n", readAll(t, snap, "small.yaml"))

	_, err = newDir(t, gitsource.Config{Repo: root, MaxTotalSize: 3}).Snapshot(context.Background())
	require.ErrorContains(t, err, "more than 3 bytes")
}
