// Package gittest serves real Git repositories to tests: a bare repository
// with a work tree to commit from, git daemon (git://) and git http-backend
// (smart HTTP, basic auth, optional TLS) on 127.0.0.1. It needs the git
// binary; a missing one fails the test (CI installs it), never skips it.
package gittest

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gitEnv keeps the user's and the system's git configuration out of the
// tests and fixes the identity commits are made with.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada Lovelace",
		"GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace",
		"GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// Git runs git in dir and returns its trimmed output. A missing git
// fails the test: CI installs it, and a skipped test would hide that.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	_, err := exec.LookPath("git")
	require.NoError(tb, err, "these tests need the git binary")
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// Repo is a bare repository served to the source (base/name.git) and
// a work tree that commits and pushes to it.
type Repo struct {
	tb testing.TB
	// Base is the directory served (it holds Name).
	Base string
	// Name is the repository's directory name under Base.
	Name string
	// Bare is the served bare repository.
	Bare string
	// Work is the work tree that commits and pushes.
	Work string
}

// NewRepo creates an empty repository with a main branch.
func NewRepo(tb testing.TB) *Repo {
	tb.Helper()
	base := tb.TempDir()
	r := &Repo{tb: tb, Base: base, Name: "fleet.git", Bare: filepath.Join(base, "fleet.git"), Work: tb.TempDir()}
	Git(tb, base, "init", "--quiet", "--bare", "-b", "main", r.Bare)
	Git(tb, r.Work, "init", "--quiet", "-b", "main")
	return r
}

// Commit writes files (an empty content deletes the file), commits them on
// the current branch and pushes it. It returns the commit hash.
func (r *Repo) Commit(msg string, files map[string]string) string {
	r.tb.Helper()
	return r.CommitAs("", msg, files)
}

// CommitAs is Commit with another author ("Name <email>"; empty keeps Ada
// Lovelace), while Ada stays the committer, as when a maintainer merges
// someone else's change.
func (r *Repo) CommitAs(author, msg string, files map[string]string) string {
	r.tb.Helper()
	// Deletions first: a commit may replace a file by a directory of the
	// same name (hardware/b.yaml -> hardware/b.yaml/x.yaml), which map
	// order alone would sometimes try the other way round.
	for name, content := range files {
		if content == "" {
			require.NoError(r.tb, os.Remove(filepath.Join(r.Work, filepath.FromSlash(name))))
		}
	}
	for name, content := range files {
		if content == "" {
			continue
		}
		p := filepath.Join(r.Work, filepath.FromSlash(name))
		require.NoError(r.tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(r.tb, os.WriteFile(p, []byte(content), 0o644))
	}
	Git(r.tb, r.Work, "add", "-A")
	args := []string{"commit", "--quiet", "--allow-empty", "-m", msg}
	if author != "" {
		args = append(args, "--author", author)
	}
	Git(r.tb, r.Work, args...)
	Git(r.tb, r.Work, "push", "--quiet", "--force", r.Bare, "HEAD:refs/heads/main")
	return Git(r.tb, r.Work, "rev-parse", "HEAD")
}

// SetBranch points the served main branch at hash, as a force-push does.
func (r *Repo) SetBranch(hash string) {
	r.tb.Helper()
	Git(r.tb, r.Work, "reset", "--quiet", "--hard", hash)
	Git(r.tb, r.Work, "push", "--quiet", "--force", r.Bare, "HEAD:refs/heads/main")
}

// Blob is the hash of a file at a commit, as git computes it.
func (r *Repo) Blob(commit, path string) string {
	r.tb.Helper()
	return Git(r.tb, r.Work, "rev-parse", commit+":"+path)
}

// FileURL is the repository's file:// URL.
func (r *Repo) FileURL() string { return "file://" + r.Bare }

// Daemon serves a directory of repositories over git://.
type Daemon struct {
	// URL is git://127.0.0.1:PORT/; append a repository name.
	URL      string
	base     string
	port     int
	stop     func()
	once     sync.Once
	mu       sync.Mutex
	requests int
}

// UploadPacks counts the upload-pack connections served: one per ls-remote
// and one per fetch.
func (d *Daemon) UploadPacks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// ServeDaemon starts git daemon on a free port of 127.0.0.1. git daemon
// cannot listen on port 0, so a port is picked by listening and closing,
// and picked again if another process takes it first.
func ServeDaemon(tb testing.TB, base string) *Daemon {
	tb.Helper()
	var lastErr error
	for range 5 {
		d, err := startDaemon(tb, base)
		if err == nil {
			return d
		}
		lastErr = err
	}
	require.NoError(tb, lastErr, "start git daemon")
	return nil
}

func startDaemon(tb testing.TB, base string) (*Daemon, error) {
	return startDaemonOn(tb, base, FreePort(tb))
}

// Stop kills the daemon, as a Git server going down.
func (d *Daemon) Stop() {
	d.once.Do(d.stop)
}

// Restart starts the daemon again on the same port after Stop.
func (d *Daemon) Restart(tb testing.TB) {
	tb.Helper()
	var err error
	for range 20 {
		var nd *Daemon
		if nd, err = startDaemonOn(tb, d.base, d.port); err == nil {
			d.mu.Lock()
			d.stop, d.once = nd.stop, sync.Once{}
			d.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(tb, err, "restart git daemon on port %d", d.port)
}

func startDaemonOn(tb testing.TB, base string, port int) (*Daemon, error) {
	// git-daemon itself rather than the git wrapper, in a process group of
	// its own, so that killing the group stops it and its per-connection
	// children.
	execPath := Git(tb, base, "--exec-path")
	cmd := exec.Command(filepath.Join(execPath, "git-daemon"), "--export-all", "--reuseaddr", "--verbose", "--informative-errors",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+base, base)
	cmd.Env = Env()
	// Pdeathsig: a test binary killed by its timeout leaves no daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	stderr, err := cmd.StderrPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	d := &Daemon{URL: fmt.Sprintf("git://127.0.0.1:%d/", port), base: base, port: port}
	var logged bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			logged.WriteString(line + "\n")
			if strings.Contains(line, "Request upload-pack") {
				d.requests++
			}
			d.mu.Unlock()
		}
	}()
	exited := make(chan error, 1)
	go func() {
		<-readDone
		exited <- cmd.Wait()
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			d.mu.Lock()
			defer d.mu.Unlock()
			return nil, fmt.Errorf("git daemon exited (%v): %s", err, logged.String())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			d.stop = stop
			tb.Cleanup(func() { d.Stop() })
			return d, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return nil, errors.New("git daemon did not start listening within 5s")
}

// FreePort returns a port of 127.0.0.1 nobody listened on a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(tb, ln.Close())
	return port
}

// HTTP serves a directory of repositories through git http-backend,
// behind basic auth.
type HTTP struct {
	// URL is http(s)://127.0.0.1:PORT/; append a repository name.
	URL string
	// CAPEM is the server certificate when it serves TLS.
	CAPEM []byte
	// InfoRefs, UploadPacks and Refused count requests: ref listings,
	// fetches and requests refused for bad credentials.
	InfoRefs, UploadPacks, Refused atomic.Int64
}

// ServeHTTP serves the repositories under base through git http-backend
// behind basic auth (user, password), over TLS when useTLS.
func ServeHTTP(tb testing.TB, base, user, password string, useTLS bool) *HTTP {
	tb.Helper()
	execPath := Git(tb, base, "--exec-path")
	backend := &cgi.Handler{
		Path:   filepath.Join(execPath, "git-http-backend"),
		Stderr: io.Discard,
		Env: []string{
			"GIT_PROJECT_ROOT=" + base,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=" + os.DevNull,
		},
	}
	g := &HTTP{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			g.Refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			g.InfoRefs.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			g.UploadPacks.Add(1)
		}
		backend.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
		g.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		_, err := x509.ParseCertificate(srv.Certificate().Raw)
		require.NoError(tb, err)
	} else {
		srv = httptest.NewServer(h)
	}
	tb.Cleanup(srv.Close)
	g.URL = srv.URL + "/"
	return g
}
