package boot_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/boot"
)

func TestBootFiles(t *testing.T) {
	dir := t.TempDir()
	kernel := strings.Repeat("0123456789", 1000)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vmlinuz-x86_64"), []byte(kernel), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "hook", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook", "initramfs-x86_64"), []byte("initrd"), 0o644))
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("not for machines"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "escape")))
	require.NoError(t, os.Symlink("vmlinuz-x86_64", filepath.Join(dir, "vmlinuz")))

	f := newFixture(t, boot.Config{BootDir: dir})
	// Over a real connection: Range and sizes are what loaders rely on.
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	resp, body := get("/boot/vmlinuz-x86_64")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "10000", resp.Header.Get("Content-Length"))
	require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
	require.Equal(t, kernel, body)

	resp, body = get("/boot/vmlinuz-x86_64", "Range", "bytes=9995-")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, "bytes 9995-9999/10000", resp.Header.Get("Content-Range"))
	require.Equal(t, "56789", body)

	resp, _ = get("/boot/vmlinuz-x86_64", "Range", "bytes=10000-")
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode)
	require.Equal(t, "bytes */10000", resp.Header.Get("Content-Range"))

	resp, body = get("/boot/hook/initramfs-x86_64")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "initrd", body)

	resp, body = get("/boot/vmlinuz") // a symlink inside the directory is followed
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, kernel, body)

	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/boot/escape", http.StatusForbidden, "boot file escape is not inside the boot directory\n"},
		{"/boot/../" + filepath.Base(outside), http.StatusBadRequest, "path must not contain ..\n"},
		{"/boot/hook/%2e%2e/%2e%2e/etc/passwd", http.StatusBadRequest, "path must not contain ..\n"},
		{"/boot/missing", http.StatusNotFound, "no boot file missing\n"},
		{"/boot/hook", http.StatusNotFound, "no boot file hook\n"},
		{"/boot/hook/sub/", http.StatusNotFound, "no boot file hook/sub/\n"},
	} {
		resp, body := get(c.path)
		require.Equal(t, c.code, resp.StatusCode, c.path)
		require.Equal(t, c.body, body, c.path)
		require.NotContains(t, body, "not for machines")
	}

	t.Run("NoBootDir", func(t *testing.T) {
		f := newFixture(t, boot.Config{})
		code, body, _ := f.get("/boot/vmlinuz-x86_64", "192.0.2.9:1")
		require.Equal(t, http.StatusNotFound, code)
		require.Equal(t, "this server has no boot files (tink-server --boot-dir)\n", body)
	})
	t.Run("BootDirNotADirectory", func(t *testing.T) {
		_, err := boot.New(boot.Config{Store: f.store, BootDir: outside})
		require.EqualError(t, err, "--boot-dir "+outside+" is not a directory")
	})
}
