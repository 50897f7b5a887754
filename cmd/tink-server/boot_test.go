package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBootListener: --boot-listen serves the machine-facing routes on a
// listener of their own, with --boot-dir files and the API's URL on the
// kernel line; it is off by default.
func TestBootListener(t *testing.T) {
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vmlinuz-x86_64"), []byte("kernel"), 0o644))
	m := MustRunMain(t, repo, "--boot-listen", "127.0.0.1:0", "--boot-dir", dir, "--boot-kernel-args", "console=ttyS0 tink_worker_image=w:1")
	waitReady(t, m)
	require.NotEmpty(t, m.BootAddr())
	require.NotEqual(t, m.Addr(), m.BootAddr())
	fetch := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + m.BootAddr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := fetch("/ipxe/script/52:54:00:10:00:03/auto.ipxe")
	require.Equal(t, http.StatusOK, code, body)
	_, port, _ := strings.Cut(m.Addr(), ":")
	require.Contains(t, body, "set download-url http://"+m.BootAddr()+"/boot\n")
	require.Contains(t, body, " grpc_authority=127.0.0.1:"+port+" ")
	require.Contains(t, body, " tink_server=http://127.0.0.1:"+port+" console=ttyS0 tink_worker_image=w:1 ")
	code, body = fetch("/boot/vmlinuz-x86_64")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "kernel", body)
	// The API is not on the machine-facing listener.
	code, _ = fetch("/v1/hardware")
	require.Equal(t, http.StatusNotFound, code)

	off := MustRunMain(t, repo)
	require.Empty(t, off.BootAddr())

	_, err := parseWith(t, nil, "--repo", repo, "--boot-dir", dir)
	require.EqualError(t, err, "--boot-dir, --trusted-proxies, --boot-kernel-args and --boot-api-url need --boot-listen")
	_, err = parseWith(t, nil, "--repo", repo, "--boot-listen", ":0", "--trusted-proxies", "10.0.0.0/8,proxy")
	require.EqualError(t, err, `--trusted-proxies: "proxy" is neither an IP address nor a CIDR prefix`)
	_, err = parseWith(t, nil, "--repo", repo, "--boot-listen", ":0", "--boot-api-url", "tink:42113")
	require.EqualError(t, err, `--boot-api-url "tink:42113": want an http:// or https:// URL`)
}
