package gitsource_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

const hw1 = "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-01}\n"

func newGit(tb testing.TB, cfg gitsource.Config) *gitsource.Git {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = tb.TempDir()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	g, err := gitsource.NewGit(cfg)
	require.NoError(tb, err)
	return g
}

func TestGit_Daemon(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("add node-01\n\nwith a body", map[string]string{
		"hardware/node-01.yaml":    hw1,
		"templates/basic.yaml":     "name: basic\n",
		".github/workflows/ci.yml": "on: push\n",
		"README.md":                "# fleet\n",
	})
	d := gittest.ServeDaemon(t, repo.Base)
	g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name})

	snap, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c1, snap.Revision)
	require.Equal(t, c1, snap.Commit)
	require.Equal(t, "Ada Lovelace <ada@example.com>", snap.Author)
	require.Equal(t, "add node-01\n\nwith a body\n", snap.Message)
	require.False(t, snap.Time.IsZero())
	require.Equal(t, map[string]string{
		"README.md":             repo.Blob(c1, "README.md"),
		"hardware/node-01.yaml": repo.Blob(c1, "hardware/node-01.yaml"),
		"templates/basic.yaml":  repo.Blob(c1, "templates/basic.yaml"),
	}, fileMap(snap), "hidden directories are left out; hashes are git's blob hashes")
	require.Equal(t, int64(len(hw1)), snap.Files[1].Size)
	require.Equal(t, hw1, readAll(t, snap, "hardware/node-01.yaml"))
	require.NoError(t, fstest.TestFS(snap.FS(), "README.md", "hardware/node-01.yaml", "templates/basic.yaml"))
	hashes, ok := snap.FS().(interface{ FileHash(string) (string, bool) })
	require.True(t, ok)
	h, ok := hashes.FileHash("templates/basic.yaml")
	require.True(t, ok)
	require.Equal(t, repo.Blob(c1, "templates/basic.yaml"), h)
	_, ok = hashes.FileHash("templates")
	require.False(t, ok)

	st := g.Status()
	require.Equal(t, snap.Revision, st.Revision)
	require.Equal(t, "branch main", st.Ref)
	require.Equal(t, int64(1), st.Checks)
	require.Equal(t, int64(1), st.Fetches)
	require.Equal(t, 2, d.UploadPacks(), "one ls-remote and one fetch")

	// The remote has not moved: each sync is one ls-remote and no fetch.
	drain(g)
	runSource(t, g)
	eventually(t, 5*time.Second, func() bool { return g.Status().Checks >= 2 }, "Run's first sync")
	for i := range 3 {
		g.Trigger()
		eventually(t, 5*time.Second, func() bool { return g.Status().Checks >= int64(3+i) }, "trigger %d not served", i)
	}
	require.Equal(t, int64(1), g.Status().Fetches)
	eventually(t, 5*time.Second, func() bool { return int(g.Status().Checks)+1 == d.UploadPacks() },
		"an unchanged remote is only listed: %d checks, %d upload-packs", g.Status().Checks, d.UploadPacks())

	c2 := repo.Commit("change node-01", map[string]string{"hardware/node-01.yaml": hw1 + "spec: {}\n"})
	g.Trigger()
	snap2 := waitChange(t, g, 5*time.Second)
	require.Equal(t, "main@sha1:"+c2, snap2.Revision)
	require.Equal(t, int64(2), g.Status().Fetches)
	require.Equal(t, snap.Files[0], snap2.Files[0], "an unchanged file keeps its hash")
	require.NotEqual(t, snap.Files[1].Hash, snap2.Files[1].Hash)
	require.Equal(t, hw1, readAll(t, snap, "hardware/node-01.yaml"), "an older snapshot does not change")
}

func TestGit_HTTPBasicAuth(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"hardware/node-01.yaml": hw1})
	srv := gittest.ServeHTTP(t, repo.Base, "operator", "s3cret-pass", false)
	auth := writeAuthDir(t, map[string][]byte{"username": []byte("operator\n"), "password": []byte("s3cret-pass\n")})
	g := newGit(t, gitsource.Config{Repo: srv.URL + repo.Name, AuthDir: auth, PollInterval: 50 * time.Millisecond})

	snap, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c1, snap.Revision)
	require.Equal(t, int64(1), srv.UploadPacks.Load())

	// Polling an unchanged remote lists its refs and never asks for a pack.
	runSource(t, g)
	eventually(t, 5*time.Second, func() bool { return srv.InfoRefs.Load() >= 8 }, "polls")
	require.Equal(t, int64(1), srv.UploadPacks.Load(), "upload-pack requests while the remote did not move")
	require.Equal(t, int64(1), g.Status().Fetches)
	require.Zero(t, srv.Refused.Load())

	c2 := repo.Commit("second", map[string]string{"hardware/node-02.yaml": strings.ReplaceAll(hw1, "01", "02")})
	snap2 := waitChange(t, g, 5*time.Second)
	require.Equal(t, "main@sha1:"+c2, snap2.Revision)
	require.Equal(t, int64(2), srv.UploadPacks.Load())
	require.Len(t, snap2.Files, 2)
}

func TestGit_HTTPSToken(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"a.yaml": "a: 1\n"})
	srv := gittest.ServeHTTP(t, repo.Base, "git", "ghp_token123", true)
	auth := writeAuthDir(t, map[string][]byte{"token": []byte("ghp_token123"), "ca.crt": srv.CAPEM})
	g := newGit(t, gitsource.Config{Repo: srv.URL + repo.Name, AuthDir: auth})
	snap, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c1, snap.Revision)
	require.True(t, strings.HasPrefix(srv.URL, "https://"))
}

func TestGit_CredentialsNeverShown(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Commit("first", map[string]string{"a.yaml": "a: 1\n"})
	srv := gittest.ServeHTTP(t, repo.Base, "operator", "right-password", false)
	host := strings.TrimPrefix(srv.URL, "http://")

	t.Run("URLUserinfo", func(t *testing.T) {
		g := newGit(t, gitsource.Config{Repo: "http://operator:wrong-password@" + host + repo.Name})
		_, err := g.Snapshot(context.Background())
		require.Error(t, err)
		st := g.Status()
		for _, s := range []string{err.Error(), st.LastError, st.Source} {
			require.NotContains(t, s, "wrong-password")
			require.NotContains(t, s, "operator:")
		}
		require.Contains(t, err.Error(), "ls-remote http://"+host+repo.Name)
		require.Contains(t, err.Error(), "authentication required")
		require.Equal(t, 1, st.Failures)
		require.Equal(t, "http://"+host+repo.Name, st.Source)
	})
	t.Run("URLUserinfoRight", func(t *testing.T) {
		g := newGit(t, gitsource.Config{Repo: "http://operator:right-password@" + host + repo.Name})
		_, err := g.Snapshot(context.Background())
		require.NoError(t, err)
		require.NotContains(t, g.Status().Source, "right-password")
	})
	t.Run("AuthDir", func(t *testing.T) {
		auth := writeAuthDir(t, map[string][]byte{"username": []byte("operator"), "password": []byte("not-the-password")})
		g := newGit(t, gitsource.Config{Repo: srv.URL + repo.Name, AuthDir: auth})
		_, err := g.Snapshot(context.Background())
		require.Error(t, err)
		require.NotContains(t, err.Error(), "not-the-password")
		require.NotContains(t, g.Status().LastError, "not-the-password")

		// The auth dir is read at every sync: fixing the secret fixes
		// the source without a restart.
		require.NoError(t, os.WriteFile(filepath.Join(auth, "password"), []byte("right-password"), 0o600))
		_, err = g.Snapshot(context.Background())
		require.NoError(t, err)
		require.Zero(t, g.Status().Failures)
		require.Empty(t, g.Status().LastError)
	})
}

func TestGit_ForcePush(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	a := repo.Commit("a", map[string]string{"f.yaml": "v: a\n"})
	b := repo.Commit("b", map[string]string{"f.yaml": "v: b\n"})
	d := gittest.ServeDaemon(t, repo.Base)
	g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name})
	ctx := context.Background()
	snap, err := g.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+b, snap.Revision)
	runSource(t, g)

	// Rewrite history: c replaces b on top of a.
	repo.SetBranch(a)
	c := repo.Commit("c", map[string]string{"f.yaml": "v: c\n", "g.yaml": "g: 1\n"})
	g.Trigger()
	snap = waitRevision(t, g, "main@sha1:"+c, 5*time.Second)
	require.Equal(t, "v: c\n", readAll(t, snap, "f.yaml"))

	// The branch moves back to a, which the shallow cache never held.
	repo.SetBranch(a)
	g.Trigger()
	snap = waitRevision(t, g, "main@sha1:"+a, 5*time.Second)
	require.Equal(t, "v: a\n", readAll(t, snap, "f.yaml"))
	require.Len(t, snap.Files, 1)
	fetches := g.Status().Fetches

	// And forward again to c, which the cache holds: no fetch.
	repo.SetBranch(c)
	g.Trigger()
	waitRevision(t, g, "main@sha1:"+c, 5*time.Second)
	require.Equal(t, fetches, g.Status().Fetches)
}

func TestGit_FileURLAndPath(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{
		"clusters/ams1/hardware/n1.yaml": hw1,
		"clusters/ams1/tink.cue":         "defaults: {}\n",
		"clusters/fra1/n2.yaml":          hw1,
	})
	ctx := context.Background()
	g := newGit(t, gitsource.Config{Repo: repo.FileURL(), Path: "/clusters/ams1/"})
	snap, err := g.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c1, snap.Revision)
	require.Equal(t, map[string]string{
		"hardware/n1.yaml": repo.Blob(c1, "clusters/ams1/hardware/n1.yaml"),
		"tink.cue":         repo.Blob(c1, "clusters/ams1/tink.cue"),
	}, fileMap(snap))
	require.Equal(t, "clusters/ams1", g.Status().Path)

	for _, p := range []string{"clusters/nowhere", "clusters/ams1/tink.cue", "nowhere/at/all"} {
		g = newGit(t, gitsource.Config{Repo: repo.FileURL(), Path: p})
		_, err = g.Snapshot(ctx)
		require.ErrorContains(t, err, `"`+p+`" is not a directory in this commit`)
		require.Equal(t, int64(1), g.Status().Fetches, "a missing path is not the cache's fault")
	}
}

func TestGit_Tag(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"f.yaml": "v: 1\n"})
	gittest.Git(t, repo.Work, "tag", "-a", "-m", "release 1", "v1")
	gittest.Git(t, repo.Work, "tag", "light")
	gittest.Git(t, repo.Work, "push", "--quiet", repo.Bare, "v1", "light")
	c2 := repo.Commit("second", map[string]string{"f.yaml": "v: 2\n"})
	ctx := context.Background()

	for _, tag := range []string{"v1", "light"} {
		g := newGit(t, gitsource.Config{Repo: repo.FileURL(), Tag: tag})
		snap, err := g.Snapshot(ctx)
		require.NoError(t, err, tag)
		require.Equal(t, tag+"@sha1:"+c1, snap.Revision)
		require.Equal(t, c1, snap.Commit)
		require.Equal(t, "tag "+tag, g.Status().Ref)
	}

	// A tag that moves is followed.
	g := newGit(t, gitsource.Config{Repo: repo.FileURL(), Tag: "v1", PollInterval: time.Hour})
	_, err := g.Snapshot(ctx)
	require.NoError(t, err)
	runSource(t, g)
	gittest.Git(t, repo.Work, "tag", "-f", "-a", "-m", "release 1 again", "v1")
	gittest.Git(t, repo.Work, "push", "--quiet", "--force", repo.Bare, "v1")
	g.Trigger()
	snap := waitChange(t, g, 5*time.Second)
	require.Equal(t, "v1@sha1:"+c2, snap.Revision)

	g = newGit(t, gitsource.Config{Repo: repo.FileURL(), Tag: "v9"})
	_, err = g.Snapshot(ctx)
	require.ErrorContains(t, err, `tag "v9" not found`)
}

func TestGit_Commit(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"f.yaml": "v: 1\n"})
	c2 := repo.Commit("second", map[string]string{"f.yaml": "v: 2\n"})
	repo.Commit("third", map[string]string{"f.yaml": "v: 3\n"})
	d := gittest.ServeDaemon(t, repo.Base)
	ctx := context.Background()

	check := func(t *testing.T, hash, want string) *gitsource.Git {
		g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name, Commit: strings.ToUpper(hash), PollInterval: 20 * time.Millisecond})
		snap, err := g.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, "sha1:"+hash, snap.Revision)
		require.Equal(t, want, readAll(t, snap, "f.yaml"))
		require.Equal(t, "commit "+hash, g.Status().Ref)
		return g
	}
	t.Run("ServerRefusesHashes", func(t *testing.T) {
		// By default a server serves only what its refs point at, so the
		// source fetches every branch.
		check(t, c1, "v: 1\n")
	})
	t.Run("ServerServesHashes", func(t *testing.T) {
		gittest.Git(t, repo.Bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
		g := check(t, c2, "v: 2\n")
		// A pinned commit never changes: no more network calls.
		before := d.UploadPacks()
		runSource(t, g)
		eventually(t, 5*time.Second, func() bool { return g.Status().LastSync.After(time.Now().Add(-10 * time.Millisecond)) }, "polls")
		time.Sleep(100 * time.Millisecond)
		require.Equal(t, before, d.UploadPacks())
		require.Zero(t, g.Status().Checks)
	})
	t.Run("Unknown", func(t *testing.T) {
		g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name, Commit: strings.Repeat("ab", 20)})
		_, err := g.Snapshot(ctx)
		require.ErrorContains(t, err, "fetch "+d.URL+repo.Name+" commit abab")
	})
}

func TestGit_CacheKeptAcrossRestarts(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"f.yaml": "v: 1\n"})
	srv := gittest.ServeHTTP(t, repo.Base, "u", "p-secret", false)
	auth := writeAuthDir(t, map[string][]byte{"username": []byte("u"), "password": []byte("p-secret")})
	cache := t.TempDir()
	cfg := gitsource.Config{Repo: srv.URL + repo.Name, AuthDir: auth, CacheDir: cache}
	ctx := context.Background()

	_, err := newGit(t, cfg).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), srv.UploadPacks.Load())

	g := newGit(t, cfg)
	snap, err := g.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c1, snap.Revision)
	require.Equal(t, int64(1), srv.UploadPacks.Load(), "a restart with the cache in place fetches nothing")
	require.Zero(t, g.Status().Fetches)
}

func TestGit_BrokenCacheIsReplaced(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Commit("first", map[string]string{"f.yaml": "v: 1\n"})
	cache := t.TempDir()
	cfg := gitsource.Config{Repo: repo.FileURL(), CacheDir: cache}
	g := newGit(t, cfg)
	ctx := context.Background()
	_, err := g.Snapshot(ctx)
	require.NoError(t, err)

	// Damage every pack of the cache.
	packs, err := filepath.Glob(filepath.Join(gitsource.CacheDirOf(g), "objects", "pack", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, packs)
	for _, p := range packs {
		require.NoError(t, os.WriteFile(p, []byte("garbage"), 0o644))
	}
	c2 := repo.Commit("second", map[string]string{"f.yaml": "v: 2\n"})
	g = newGit(t, cfg)
	snap, err := g.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+c2, snap.Revision)
	require.Equal(t, "v: 2\n", readAll(t, snap, "f.yaml"))
}

func TestGit_TooManyPacks(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Commit("c0", map[string]string{"f.yaml": "v: 0\n"})
	g := newGit(t, gitsource.Config{Repo: repo.FileURL()})
	gitsource.SetMaxPacks(g, 2)
	ctx := context.Background()
	_, err := g.Snapshot(ctx)
	require.NoError(t, err)
	runSource(t, g)
	packs := func() int {
		p, _ := filepath.Glob(filepath.Join(gitsource.CacheDirOf(g), "objects", "pack", "*.pack"))
		return len(p)
	}
	for i := 1; i <= 4; i++ {
		c := repo.Commit("c", map[string]string{"f.yaml": strings.Repeat("v: x\n", i)})
		g.Trigger()
		snap := waitChange(t, g, 5*time.Second)
		require.Equal(t, "main@sha1:"+c, snap.Revision)
		require.LessOrEqual(t, packs(), 3)
	}
}

func TestGit_LargeFiles(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	big := strings.Repeat("x", 2048)
	c1 := repo.Commit("first", map[string]string{"big.yaml": big, "small.yaml": "a: 1\n"})
	g := newGit(t, gitsource.Config{Repo: repo.FileURL(), MaxFileSize: 1024})
	snap, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, repo.Blob(c1, "big.yaml"), snap.Files[0].Hash)
	require.Equal(t, int64(2048), snap.Files[0].Size)

	fsys := snap.FS()
	st, err := fs.Stat(fsys, "big.yaml")
	require.NoError(t, err)
	require.Equal(t, int64(2048), st.Size(), "the loader sees the real size and reports the file as too large")
	_, err = fs.ReadFile(fsys, "big.yaml")
	require.ErrorIs(t, err, gitsource.ErrTooLarge)
	f, err := fsys.Open("big.yaml")
	require.NoError(t, err)
	_, err = io.ReadAll(f)
	require.ErrorIs(t, err, gitsource.ErrTooLarge)
	require.Equal(t, "a: 1\n", readAll(t, snap, "small.yaml"))

	g = newGit(t, gitsource.Config{Repo: repo.FileURL(), MaxTotalSize: 3})
	_, err = g.Snapshot(context.Background())
	require.ErrorContains(t, err, "more than 3 bytes")
}

// A server that accepts connections and never answers must not hold a sync
// beyond the timeout.
func TestGit_Deadline(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for _, scheme := range []string{"git", "http"} {
		g := newGit(t, gitsource.Config{Repo: scheme + "://" + ln.Addr().String() + "/fleet.git", Timeout: 300 * time.Millisecond})
		start := time.Now()
		_, err = g.Snapshot(context.Background())
		require.Error(t, err, scheme)
		require.Less(t, time.Since(start), 3*time.Second, scheme)
		require.Contains(t, err.Error(), "ls-remote "+scheme+"://")
		require.True(t, errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout"), "%s: %v", scheme, err)
	}
}

func TestGit_Backoff(t *testing.T) {
	t.Parallel()
	port := gittest.FreePort(t) // nothing listens there
	g := newGit(t, gitsource.Config{
		Repo:         "git://127.0.0.1:" + strconv.Itoa(port) + "/fleet.git",
		PollInterval: 400 * time.Millisecond,
		RetryMin:     20 * time.Millisecond,
	})
	runSource(t, g)
	eventually(t, 5*time.Second, func() bool { return g.Status().Failures >= 4 }, "failures")
	st := g.Status()
	require.Contains(t, st.LastError, "ls-remote git://127.0.0.1:")
	require.Contains(t, st.LastError, "connection refused")
	require.False(t, st.LastErrorTime.IsZero())
	require.Empty(t, st.Revision)
	require.WithinDuration(t, time.Now(), st.NextSync, 400*time.Millisecond, "backoff is capped at the poll interval")

	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 50: time.Minute} {
		require.Equal(t, want, gitsource.Backoff(failures, time.Second, time.Minute), "failures %d", failures)
	}
}

func TestGit_RunOnce(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Commit("first", map[string]string{"f.yaml": "v: 1\n"})
	g := newGit(t, gitsource.Config{Repo: repo.FileURL()})
	runSource(t, g)
	eventually(t, 5*time.Second, func() bool { return g.Status().Revision != "" }, "first sync")
	require.ErrorContains(t, g.Run(context.Background()), "already running")
}

// TestGit_IncrementalFetch shows that a one-file commit fetches one file,
// not the tree again, and that a commit needing an object from beyond the
// shallow cache's horizon (a file reverted to an old version) still reads
// right.
func TestGit_IncrementalFetch(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 300 {
		// About a kilobyte that does not compress, as real hardware files.
		var b strings.Builder
		fmt.Fprintf(&b, "name: n%03d\n", i)
		for j := range 16 {
			fmt.Fprintf(&b, "k%d: %x\n", j, sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(j)}))
		}
		files[fmt.Sprintf("hardware/n%03d.yaml", i)] = b.String()
	}
	files["f.yaml"] = "v: old\n"
	repo.Commit("fleet", files)
	second := repo.Commit("f changes", map[string]string{"f.yaml": "v: new\n"})
	d := gittest.ServeDaemon(t, repo.Base)
	cache := t.TempDir()
	g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name, CacheDir: cache})
	snap, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+second, snap.Revision)
	first := newestPackSize(t, cache)
	runSource(t, g)

	third := repo.Commit("one file", map[string]string{"hardware/n007.yaml": "name: n007\nserial: changed\n"})
	g.Trigger()
	snap = waitRevision(t, g, "main@sha1:"+third, 5*time.Second)
	require.Equal(t, "name: n007\nserial: changed\n", readAll(t, snap, "hardware/n007.yaml"))
	incr := newestPackSize(t, cache)
	require.Less(t, incr*20, first, "a one-file commit fetched %d bytes; the first fetch took %d", incr, first)

	// f.yaml goes back to the content of the first commit, which the
	// depth-1 cache never held but the server believes it has.
	fourth := repo.Commit("revert f", map[string]string{"f.yaml": "v: old\n"})
	g.Trigger()
	snap = waitRevision(t, g, "main@sha1:"+fourth, 5*time.Second)
	require.Equal(t, "v: old\n", readAll(t, snap, "f.yaml"))
	require.Len(t, snap.Files, 301)
}

// newestPackSize is the size of the pack a fetch wrote last into a cache.
func newestPackSize(tb testing.TB, cache string) int64 {
	tb.Helper()
	var newest os.FileInfo
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pack") {
			return err
		}
		fi, err := d.Info()
		if err == nil && (newest == nil || fi.ModTime().After(newest.ModTime())) {
			newest = fi
		}
		return err
	})
	require.NoError(tb, err)
	require.NotNil(tb, newest, "no pack in %s", cache)
	return newest.Size()
}

// TestGit_TriggerPush: a push a webhook names is fetched without listing
// the remote's refs first, and what is synced is always where the branch
// points after the fetch: a late or replayed delivery naming an older head
// (which the cache holds), or a head that is not on the branch at all,
// never moves the snapshot away from the branch's tip.
func TestGit_TriggerPush(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	first := repo.Commit("first", map[string]string{"a.yaml": "v: 1\n"})
	d := gittest.ServeDaemon(t, repo.Base)
	g := newGit(t, gitsource.Config{Repo: d.URL + repo.Name, PollInterval: time.Hour})
	_, err := g.Snapshot(context.Background())
	require.NoError(t, err)
	runSource(t, g)
	// Run checks the remote once as it starts.
	eventually(t, 5*time.Second, func() bool { return g.Status().Checks == 2 }, "Run did not check the remote")
	before := g.Status()

	second := repo.Commit("second", map[string]string{"a.yaml": "v: 2\n"})
	g.TriggerPush("refs/heads/main", second)
	snap := waitRevision(t, g, "main@sha1:"+second, 5*time.Second)
	require.Equal(t, "v: 2\n", readAll(t, snap, "a.yaml"))
	st := g.Status()
	require.Equal(t, before.Checks, st.Checks, "no ls-remote for a push naming its head")
	require.Equal(t, before.Fetches+1, st.Fetches)

	// A replayed delivery of the first push: the cache holds that commit,
	// but the branch is at second, so nothing changes.
	g.TriggerPush("refs/heads/main", first)
	eventually(t, 5*time.Second, func() bool { return g.Status().Fetches == st.Fetches+1 }, "no fetch after the replayed push")
	noChange(t, g, 200*time.Millisecond)
	snap, err = g.Snapshot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+second, snap.Revision, "an old head named by a webhook is not synced")

	// The branch moved on past the head a delivery names: the tip wins.
	third := repo.Commit("third", map[string]string{"a.yaml": "v: 3\n"})
	fourth := repo.Commit("fourth", map[string]string{"a.yaml": "v: 4\n"})
	g.TriggerPush("refs/heads/main", third)
	snap = waitRevision(t, g, "main@sha1:"+fourth, 5*time.Second)
	require.Equal(t, "v: 4\n", readAll(t, snap, "a.yaml"))

	// The branch went back (a force-push) and the delivery names a commit
	// no branch has: the branch's tip is synced.
	repo.SetBranch(second)
	g.TriggerPush("refs/heads/main", strings.Repeat("ab", 20))
	snap = waitRevision(t, g, "main@sha1:"+second, 5*time.Second)
	require.Equal(t, "v: 2\n", readAll(t, snap, "a.yaml"))

	// A push to another branch is a plain trigger: the refs are listed.
	checks := g.Status().Checks
	g.TriggerPush("refs/heads/other", fourth)
	eventually(t, 5*time.Second, func() bool { return g.Status().Checks == checks+1 }, "no ls-remote after a push to another branch")
	noChange(t, g, 200*time.Millisecond)
}
