package main

import (
	"bufio"
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestGracefulShutdown: on SIGTERM tink-server stops taking work (a
// worker's long poll ends at once with no action instead of holding the
// shutdown), lets requests finish, flushes and unlocks the store, and exits
// 0 well within its deadline; the store opens again with what was applied.
func TestGracefulShutdown(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tink-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	data := t.TempDir()
	cmd := exec.Command(bin, "--repo", copyDir(t, filepath.Join("..", "..", "examples", "repo")), "--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	addr := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	require.NotNil(t, addr, line)
	base := addr[1]
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	// A worker waits for work for up to 25 s on a machine with none.
	poll := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "/v1/workers/node-03/actions/next?wait=25s")
		if err != nil {
			poll <- -1
			return
		}
		resp.Body.Close()
		poll <- resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case code := <-poll:
		require.Equal(t, http.StatusNoContent, code, "the long poll ends with no action, not a broken connection")
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll held the shutdown")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit status")
	case <-time.After(10 * time.Second):
		t.Fatal("tink-server did not exit within 10 s of SIGTERM")
	}
	require.Less(t, time.Since(start), 5*time.Second)

	st, err := badger.Open(context.Background(), data, badger.Options{})
	require.NoError(t, err, "the store is unlocked and whole")
	defer st.Close()
	page, err := st.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	require.NotEmpty(t, page.Objects)
}
