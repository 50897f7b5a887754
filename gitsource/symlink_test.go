package gitsource_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestDir_LinksStayInside: a link to a file inside the repository is read;
// links out of it (absolute, relative, through a linked directory, and a
// root that is itself a link) are left out, so what they point at never
// reaches the loader, the status or the events.
func TestDir_LinksStayInside(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secrets", "bmc-node-01", "password")
	writeFiles(t, outside, map[string]string{"secrets/bmc-node-01/password": "hunter2\n"})
	real := t.TempDir()
	writeFiles(t, real, map[string]string{"hardware/n1.yaml": hw1})
	link := func(target, name string) {
		require.NoError(t, os.Symlink(target, filepath.Join(real, name)))
	}
	link(filepath.Join(real, "hardware", "n1.yaml"), "inside.yaml")
	link("hardware/n1.yaml", "inside-relative.yaml")
	link(secret, "hardware/secret.yaml")
	link("../../"+filepath.Base(outside)+"/secrets/bmc-node-01/password", "hardware/secret-relative.yaml")
	link("/etc/passwd", "passwd.yaml")
	link(filepath.Join(outside, "secrets"), "secretsdir")
	// The root itself reached through a link.
	root := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.Symlink(real, root))

	snap, err := newDir(t, gitsource.Config{Repo: root}).Snapshot(context.Background())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"hardware/n1.yaml", "inside.yaml", "inside-relative.yaml"}, paths(snap))
	for _, f := range snap.Files {
		require.NotContains(t, readAll(t, snap, f.Path), "hunter2")
	}
}

// TestGit_SymlinkBlobsLeftOut: a symbolic link committed to Git is a blob
// holding the target's path; it is never read as a file nor followed.
func TestGit_SymlinkBlobsLeftOut(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(repo.Work, "passwd.yaml")))
	require.NoError(t, os.MkdirAll(filepath.Join(repo.Work, "hardware"), 0o755))
	require.NoError(t, os.Symlink("../../../secrets/bmc/password", filepath.Join(repo.Work, "hardware", "secret.yaml")))
	repo.Commit("links", map[string]string{"hardware/n1.yaml": hw1})
	require.Equal(t, "120000", gittest.Git(t, repo.Work, "ls-tree", "HEAD", "passwd.yaml")[:6], "committed as a link")
	snap, err := newGit(t, gitsource.Config{Repo: repo.FileURL()}).Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"hardware/n1.yaml"}, paths(snap))
}

// TestDir_WatchThroughLinkedRoot: a root reached through a link (as a
// Kubernetes volume mount often is) is watched: an edit is seen at once.
func TestDir_WatchThroughLinkedRoot(t *testing.T) {
	t.Parallel()
	real := t.TempDir()
	writeFiles(t, real, map[string]string{"hardware/n1.yaml": hw1})
	root := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.Symlink(real, root))
	// An hour between polls: the change below is seen through fsnotify.
	d := newDir(t, gitsource.Config{Repo: root, PollInterval: time.Hour})
	_, err := d.Snapshot(context.Background())
	require.NoError(t, err)
	runSource(t, d)
	eventually(t, 5*time.Second, func() bool { return d.Status().Checks >= 2 }, "Run's first read")
	writeFiles(t, real, map[string]string{"hardware/n2.yaml": hw1})
	snap := waitChange(t, d, 5*time.Second)
	require.ElementsMatch(t, []string{"hardware/n1.yaml", "hardware/n2.yaml"}, paths(snap))
}
