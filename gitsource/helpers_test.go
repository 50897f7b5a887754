package gitsource_test

import (
	"bufio"
	"bytes"
	"context"
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
	"golang.org/x/crypto/ssh"

	"github.com/tinkops/tinkops/gitsource"
)

// gitEnv keeps the user's and the system's git configuration out of the
// tests and fixes the identity commits are made with.
func gitEnv() []string {
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

// mustGit runs git in dir and returns its trimmed output. A missing git
// fails the test: CI installs it, and a skipped test would hide that.
func mustGit(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	_, err := exec.LookPath("git")
	require.NoError(tb, err, "these tests need the git binary")
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// testRepo is a bare repository served to the source (base/name.git) and
// a work tree that commits and pushes to it.
type testRepo struct {
	tb   testing.TB
	base string
	name string
	bare string
	work string
}

func newTestRepo(tb testing.TB) *testRepo {
	tb.Helper()
	base := tb.TempDir()
	r := &testRepo{tb: tb, base: base, name: "fleet.git", bare: filepath.Join(base, "fleet.git"), work: tb.TempDir()}
	mustGit(tb, base, "init", "--quiet", "--bare", "-b", "main", r.bare)
	mustGit(tb, r.work, "init", "--quiet", "-b", "main")
	return r
}

// commit writes files (an empty content deletes the file), commits them on
// the current branch and pushes it. It returns the commit hash.
func (r *testRepo) commit(msg string, files map[string]string) string {
	r.tb.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if content == "" {
			require.NoError(r.tb, os.Remove(p))
			continue
		}
		require.NoError(r.tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(r.tb, os.WriteFile(p, []byte(content), 0o644))
	}
	mustGit(r.tb, r.work, "add", "-A")
	mustGit(r.tb, r.work, "commit", "--quiet", "--allow-empty", "-m", msg)
	mustGit(r.tb, r.work, "push", "--quiet", "--force", r.bare, "HEAD:refs/heads/main")
	return mustGit(r.tb, r.work, "rev-parse", "HEAD")
}

// setBranch points the served main branch at hash, as a force-push does.
func (r *testRepo) setBranch(hash string) {
	r.tb.Helper()
	mustGit(r.tb, r.work, "reset", "--quiet", "--hard", hash)
	mustGit(r.tb, r.work, "push", "--quiet", "--force", r.bare, "HEAD:refs/heads/main")
}

// blob is the hash of a file at a commit, as git computes it.
func (r *testRepo) blob(commit, path string) string {
	r.tb.Helper()
	return mustGit(r.tb, r.work, "rev-parse", commit+":"+path)
}

func (r *testRepo) fileURL() string { return "file://" + r.bare }

// gitDaemon serves a directory of repositories over git://.
type gitDaemon struct {
	url      string
	mu       sync.Mutex
	requests int
}

// uploadPacks counts the upload-pack connections served: one per ls-remote
// and one per fetch.
func (d *gitDaemon) uploadPacks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// serveGitDaemon starts git daemon on a free port of 127.0.0.1. git daemon
// cannot listen on port 0, so a port is picked by listening and closing,
// and picked again if another process takes it first.
func serveGitDaemon(tb testing.TB, base string) *gitDaemon {
	tb.Helper()
	var lastErr error
	for range 5 {
		d, err := startGitDaemon(tb, base)
		if err == nil {
			return d
		}
		lastErr = err
	}
	require.NoError(tb, lastErr, "start git daemon")
	return nil
}

func startGitDaemon(tb testing.TB, base string) (*gitDaemon, error) {
	port := freePort(tb)
	// git-daemon itself rather than the git wrapper, in a process group of
	// its own, so that killing the group stops it and its per-connection
	// children.
	execPath := mustGit(tb, base, "--exec-path")
	cmd := exec.Command(filepath.Join(execPath, "git-daemon"), "--export-all", "--reuseaddr", "--verbose", "--informative-errors",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+base, base)
	cmd.Env = gitEnv()
	// Pdeathsig: a test binary killed by its timeout leaves no daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	stderr, err := cmd.StderrPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	d := &gitDaemon{url: fmt.Sprintf("git://127.0.0.1:%d/", port)}
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
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
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
			tb.Cleanup(stop)
			return d, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return nil, errors.New("git daemon did not start listening within 5s")
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(tb, ln.Close())
	return port
}

// gitHTTP serves a directory of repositories through git http-backend,
// behind basic auth.
type gitHTTP struct {
	url         string
	caPEM       []byte
	infoRefs    atomic.Int64
	uploadPacks atomic.Int64
	refused     atomic.Int64
}

func serveGitHTTP(tb testing.TB, base, user, password string, useTLS bool) *gitHTTP {
	tb.Helper()
	execPath := mustGit(tb, base, "--exec-path")
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
	g := &gitHTTP{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			g.refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			g.infoRefs.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			g.uploadPacks.Add(1)
		}
		backend.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
		g.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		_, err := x509.ParseCertificate(srv.Certificate().Raw)
		require.NoError(tb, err)
	} else {
		srv = httptest.NewServer(h)
	}
	tb.Cleanup(srv.Close)
	g.url = srv.URL + "/"
	return g
}

// serveSSH runs an ssh server that lets key run git-upload-pack on the
// repositories under base, as a Git host's sshd does.
func serveSSH(tb testing.TB, base string, key ssh.PublicKey, hostKeys ...ssh.Signer) string {
	tb.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSHConn(c, cfg, base, &wg)
			}()
		}
	}()
	return ln.Addr().String()
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig, base string, wg *sync.WaitGroup) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveSSHSession(ch, chReqs, base, wg)
		}()
	}
}

func serveSSHSession(ch ssh.Channel, reqs <-chan *ssh.Request, base string, wg *sync.WaitGroup) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if ssh.Unmarshal(req.Payload, &payload) != nil {
			_ = req.Reply(false, nil)
			continue
		}
		name, arg, _ := strings.Cut(payload.Command, " ")
		if name != "git-upload-pack" {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		dir := filepath.Join(base, filepath.Clean("/"+strings.Trim(arg, "'")))
		cmd := exec.Command("git-upload-pack", dir)
		cmd.Env = gitEnv()
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		stdin, err := cmd.StdinPipe()
		status := uint32(1)
		if err == nil && cmd.Start() == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(stdin, ch)
				_ = stdin.Close()
			}()
			if cmd.Wait() == nil {
				status = 0
			}
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// drain discards a pending change notification, such as the one the
// first snapshot sends.
func drain(src gitsource.Source) {
	select {
	case <-src.Changes():
	default:
	}
}

// waitChange waits for the source to announce a new revision.
func waitChange(tb testing.TB, src gitsource.Source, within time.Duration) *gitsource.Snapshot {
	tb.Helper()
	select {
	case <-src.Changes():
	case <-time.After(within):
		tb.Fatalf("no new revision within %s; status %+v", within, src.Status())
	}
	snap, err := src.Snapshot(context.Background())
	require.NoError(tb, err)
	return snap
}

// noChange asserts the source announces nothing for a while.
func noChange(tb testing.TB, src gitsource.Source, within time.Duration) {
	tb.Helper()
	select {
	case <-src.Changes():
		snap, _ := src.Snapshot(context.Background())
		tb.Fatalf("unexpected new revision %s", snap.Revision)
	case <-time.After(within):
	}
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(tb testing.TB, within time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s: "+msg, append([]any{within}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runSource runs src until the test ends, and checks that Run returns. It
// first drops the notification of a snapshot already taken.
func runSource(tb testing.TB, src gitsource.Source) {
	tb.Helper()
	drain(src)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(tb, err)
		case <-time.After(10 * time.Second):
			tb.Errorf("Run did not return within 10s of its context's cancellation")
		}
	})
}

// fileMap is path -> hash of a snapshot's files.
func fileMap(s *gitsource.Snapshot) map[string]string {
	m := map[string]string{}
	for _, f := range s.Files {
		m[f.Path] = f.Hash
	}
	return m
}

// readAll reads one file of a snapshot.
func readAll(tb testing.TB, s *gitsource.Snapshot, name string) string {
	tb.Helper()
	f, err := s.FS().Open(name)
	require.NoError(tb, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(tb, err)
	return string(b)
}

// writeAuthDir writes credential files into a new directory.
func writeAuthDir(tb testing.TB, files map[string][]byte) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, b := range files {
		require.NoError(tb, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return dir
}
