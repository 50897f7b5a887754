package gitsource_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/schema"
)

func TestNew(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	for _, tc := range []struct {
		cfg  gitsource.Config
		want string // "git", "dir", or an error
		ref  string
	}{
		{gitsource.Config{Repo: "https://github.com/acme/fleet.git"}, "git", "branch main"},
		{gitsource.Config{Repo: "http://127.0.0.1:8080/fleet.git", Branch: "prod"}, "git", "branch prod"},
		{gitsource.Config{Repo: "ssh://git@github.com/acme/fleet.git", Tag: "v1.2.0"}, "git", "tag v1.2.0"},
		{gitsource.Config{Repo: "git@github.com:acme/fleet.git", Branch: "main", Commit: "0123456789ABCDEF0123456789abcdef01234567"}, "git", "commit 0123456789abcdef0123456789abcdef01234567"},
		{gitsource.Config{Repo: "git://git.example.com/fleet.git"}, "git", "branch main"},
		{gitsource.Config{Repo: "file:///srv/git/fleet.git"}, "git", "branch main"},
		{gitsource.Config{Repo: "examples/repo"}, "dir", "directory"},
		{gitsource.Config{Repo: "/srv/fleet", Branch: "main"}, "dir", "directory"},
		{gitsource.Config{Repo: "./a:b"}, "dir", "directory"},
		{gitsource.Config{Repo: ""}, "no repository given", ""},
		{gitsource.Config{Repo: "/srv/fleet", Tag: "v1"}, "is a local directory: a tag or commit applies only to a Git URL", ""},
		{gitsource.Config{Repo: "https://h/r.git", Commit: "abc123"}, `commit "abc123" is not a full 40-digit commit hash`, ""},
		{gitsource.Config{Repo: "https://h/r.git", Commit: "0123456789abcdef0123456789abcdef01234567", Tag: "v1"}, "give a tag or a commit, not both", ""},
		{gitsource.Config{Repo: "https://h/r.git", Branch: "feature..x"}, `branch name "feature..x" is not a valid Git ref name`, ""},
		{gitsource.Config{Repo: "https://h/r.git", Tag: "v1 final"}, `tag name "v1 final" is not a valid Git ref name`, ""},
		{gitsource.Config{Repo: "https://h/r.git", Path: "../etc"}, `path "../etc" leaves the repository`, ""},
		{gitsource.Config{Repo: "ftp://h/r.git"}, `unsupported protocol "ftp"`, ""},
	} {
		t.Run(tc.cfg.Repo, func(t *testing.T) {
			if tc.cfg.Repo != "" && gitsource.IsRemote(tc.cfg.Repo) {
				tc.cfg.CacheDir = cache
			}
			src, err := gitsource.New(tc.cfg)
			switch tc.want {
			case "git":
				require.NoError(t, err)
				require.IsType(t, &gitsource.Git{}, src)
			case "dir":
				require.NoError(t, err)
				require.IsType(t, &gitsource.Dir{}, src)
			default:
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.Equal(t, tc.ref, src.Status().Ref)
		})
	}

	_, err := gitsource.NewGit(gitsource.Config{Repo: "https://h/r.git"})
	require.ErrorContains(t, err, "no cache directory")

	g, err := gitsource.NewGit(gitsource.Config{Repo: "https://x-access-token:ghs_abcdef@github.com/acme/fleet.git", CacheDir: cache})
	require.NoError(t, err)
	require.Equal(t, "https://github.com/acme/fleet.git", g.Status().Source)
}

// A snapshot's FS is what schema.Load reads: the example repository loads
// the same from a directory and from a commit.
func TestSnapshot_SchemaLoad(t *testing.T) {
	t.Parallel()
	examples, err := filepath.Abs(filepath.Join("..", "examples", "repo"))
	require.NoError(t, err)
	want, err := schema.NewLoader().Load(context.Background(), os.DirFS(examples))
	require.NoError(t, err)

	dirSnap, err := newDir(t, gitsource.Config{Repo: examples}).Snapshot(context.Background())
	require.NoError(t, err)

	repo := gittest.NewRepo(t)
	files := map[string]string{}
	require.NoError(t, fs.WalkDir(os.DirFS(examples), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(examples, p))
		files["deploy/"+p] = string(b)
		return err
	}))
	repo.Commit("import the example", files)
	gitSnap, err := newGit(t, gitsource.Config{Repo: repo.FileURL(), Path: "deploy", Timeout: 10 * time.Second}).Snapshot(context.Background())
	require.NoError(t, err)

	require.Equal(t, dirSnap.Files, gitSnap.Files, "the same files have the same hashes from either source")
	for _, snap := range []*gitsource.Snapshot{dirSnap, gitSnap} {
		set, err := schema.NewLoader().Load(context.Background(), snap.FS())
		require.NoError(t, err, snap.Revision)
		require.Equal(t, want.Len(), set.Len(), snap.Revision)
	}
}
