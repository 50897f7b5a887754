// Package pgtest runs a real PostgreSQL server for tests: Debian's initdb in
// a temporary directory and pg_ctl start on a free loopback port, stopped and
// removed when the test ends. No mock database anywhere.
//
// PostgreSQL refuses to run as root, and tests here run as root, so the
// cluster belongs to an unprivileged system user (postgres if it exists,
// else nobody); as any other user it runs as that user.
//
// Without PostgreSQL the tests skip on a developer's machine and fail under
// CI=true, so CI cannot pass by silently not testing the backend.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tinkops/tinkops/citest"
)

// missing is the message when PostgreSQL cannot be found.
const missing = "PostgreSQL server binaries not found (install the postgresql package; .ci/run does)"

// Server is a running PostgreSQL cluster owned by one test.
type Server struct {
	// Dir is the cluster's directory (data and socket).
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// User and Password are the superuser's credentials; connections
	// from 127.0.0.1 must give the password (scram-sha-256), so tests
	// see the server's real authentication.
	User     string
	Password string

	bin   string
	cred  *syscall.Credential
	dbs   atomic.Int64
	tb    testing.TB
	start []string
}

// Bin returns the directory of PostgreSQL's server binaries
// (/usr/lib/postgresql/<newest>/bin), or "" when there is none.
func Bin() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Require returns the binary directory, skipping the test when PostgreSQL
// is missing on a developer's machine and failing it under CI=true.
func Require(tb testing.TB) string {
	tb.Helper()
	bin := Bin()
	if bin == "" {
		citest.Missing(tb, "pgtest: "+missing)
	}
	return bin
}

// Option changes how Start sets the cluster up.
type Option func(*options)

type options struct{ durable bool }

// Durable keeps PostgreSQL's production durability (fsync, full page
// writes), for benchmarks whose figures must mean what they would in
// production. Tests run without it: a process restart keeps every commit
// either way, and fsync on a shared machine makes every test slow.
func Durable() Option { return func(o *options) { o.durable = true } }

// Start initialises a cluster and starts it; t.Cleanup stops it and removes
// its directory.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Require(tb)
	s := &Server{bin: bin, tb: tb, User: "tink", Password: randomHex(12)}
	cred, uid, gid, err := runAs()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s.cred = cred
	// A directory of our own under the system temp dir, because a test's
	// TempDir sits under a root-only directory the cluster's user cannot
	// enter.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	s.Dir = dir
	if err := os.Chmod(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatalf("pgtest: chown %s: %v", dir, err)
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if cred != nil {
		_ = os.Chown(pwfile, uid, gid)
	}
	data := filepath.Join(dir, "data")
	s.run("initdb", "-D", data, "-U", s.User, "--pwfile", pwfile, "-E", "UTF8", "--locale", "C",
		"--auth-local", "trust", "--auth-host", "scram-sha-256", "--no-sync")
	_ = os.Remove(pwfile)
	conf := "max_connections = 200\nshared_buffers = 32MB\n" +
		"unix_socket_directories = '" + dir + "'\nlisten_addresses = '127.0.0.1'\nlog_min_messages = warning\n"
	if !o.durable {
		conf += "fsync = off\nfull_page_writes = off\n"
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		s.Port = freePort(tb)
		s.start = []string{"-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", fmt.Sprintf("-p %d", s.Port)}
		if lastErr = s.ctl(append([]string{"start"}, s.start...)...); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("pgtest: pg_ctl start: %v\n%s", lastErr, s.Log())
	}
	tb.Cleanup(func() {
		if err := s.ctl("stop", "-D", data, "-m", "immediate", "-w"); err != nil {
			tb.Logf("pgtest: pg_ctl stop: %v", err)
		}
	})
	return s
}

// runAs returns the credential to run PostgreSQL with when we are root,
// with its uid and gid; nil when we are not root.
func runAs() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, uid, gid, nil
	}
	return nil, 0, 0, fmt.Errorf("running as root and neither user postgres nor nobody exists: PostgreSQL refuses to run as root")
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) run(name string, args ...string) {
	s.tb.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		s.tb.Fatalf("pgtest: %s: %v\n%s", name, err, out)
	}
}

func (s *Server) ctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := s.command("pg_ctl", args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// Output goes to a file, not a pipe: the server pg_ctl starts
	// inherits it, and a pipe would stay open as long as the server runs.
	out, err := os.CreateTemp("", "pg_ctl-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// Stop stops the server (fast shutdown: clients are disconnected, committed
// work is kept).
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.ctl("stop", "-D", filepath.Join(s.Dir, "data"), "-m", "fast", "-w"); err != nil {
		tb.Fatalf("pgtest: pg_ctl stop: %v", err)
	}
}

// Resume starts a stopped server again on the same port.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	if err := s.ctl(append([]string{"start"}, s.start...)...); err != nil {
		tb.Fatalf("pgtest: pg_ctl start: %v\n%s", err, s.Log())
	}
}

// Restart is pg_ctl restart: every connection is cut, committed work is
// kept.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.ctl(append([]string{"restart", "-m", "fast"}, s.start...)...); err != nil {
		tb.Fatalf("pgtest: pg_ctl restart: %v\n%s", err, s.Log())
	}
}

// Log returns the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// DSN returns a connection URL for database db as the superuser.
func (s *Server) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.User, s.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates an empty database and returns its DSN, so that every
// test (or every store a contract suite opens) starts from nothing without
// paying for a cluster of its own.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%s", s.dbs.Add(1), randomHex(4))
	s.psql(tb, "postgres", "CREATE DATABASE "+name)
	return s.DSN(name)
}

// Exec runs SQL in database db through psql over the local socket (for
// fixtures and for checks that must not go through the code under test).
func (s *Server) Exec(tb testing.TB, db, sql string) string {
	tb.Helper()
	return s.psql(tb, db, sql)
}

func (s *Server) psql(tb testing.TB, db, sql string) string {
	tb.Helper()
	out, err := s.command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.Dir, "-p", strconv.Itoa(s.Port),
		"-U", s.User, "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		tb.Fatalf("pgtest: psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
