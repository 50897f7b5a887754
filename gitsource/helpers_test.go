package gitsource_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// serveSSH runs an ssh server that lets key run git-upload-pack on the
// repositories under base, as a Git host's ssh daemon does.
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
		cmd.Env = gittest.Env()
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

// waitRevision waits until the source announces rev. A Run started just
// before the test moves the branch may first announce a state on the way
// there (each push is a revision of its own), which is not a failure.
func waitRevision(tb testing.TB, src gitsource.Source, rev string, within time.Duration) *gitsource.Snapshot {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		snap := waitChange(tb, src, time.Until(deadline))
		if snap.Revision == rev {
			return snap
		}
	}
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
