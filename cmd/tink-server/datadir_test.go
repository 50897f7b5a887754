package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDataDirRemovedWhileRunning: the data directory of a running
// tink-server is removed (an operator's mistake, a volume gone). On SIGTERM
// the server still exits, within its grace period, with an error that says
// the store could not be closed cleanly.
func TestDataDirRemovedWhileRunning(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tink-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "--repo", copyDir(t, filepath.Join("..", "..", "examples", "repo")), "--listen", "127.0.0.1:0", "--data-dir", data)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	addr := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	require.NotNil(t, addr, line)
	require.Eventually(t, func() bool {
		resp, err := http.Get(addr[1] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	require.NoError(t, os.RemoveAll(data))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "a non-zero exit status: the store was not closed cleanly")
		require.Contains(t, stderr.String(), data, "the error names the data directory")
		require.Contains(t, stderr.String(), "was removed while the store was open")
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(500 * time.Millisecond)
		t.Fatalf("tink-server did not exit within 20 s of SIGTERM\n%s", stderr.String())
	}
}
