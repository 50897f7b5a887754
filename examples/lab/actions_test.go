package lab_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/citest"
)

// busyboxPath returns a PATH of busybox applets only, as in the boot
// image; a missing busybox fails under CI and skips elsewhere.
func busyboxPath(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		citest.Missing(t, "the boot image's actions need busybox (apt-get install busybox-static; .ci/run installs it)")
	}
	dir := t.TempDir()
	out, err := exec.Command(bb, "--install", "-s", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dir
}

// action runs one of the boot image's actions with env (as the process
// runtime gives it: PATH, HOME and the action's environment only).
func action(t *testing.T, path, name string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(path, "sh"), filepath.Join("bootimage", "actions", name))
	cmd.Env = append([]string{"PATH=" + path, "HOME=/tmp", "TMPDIR=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestBootImageActions runs image2disk and writefile on this machine's
// busybox against a file standing in for the disk: the sha256 check, a
// compressed image, a failed download, raw writes.
func TestBootImageActions(t *testing.T) {
	path := busyboxPath(t)
	image := bytes.Repeat([]byte("tinkops image "), 100_000) // 1.4 MB
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(image)
	require.NoError(t, zw.Close())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/disk.img":
			_, _ = w.Write(image)
		case "/disk.img.gz":
			_, _ = w.Write(gz.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	disk := filepath.Join(t.TempDir(), "disk")
	blank := func() {
		require.NoError(t, os.WriteFile(disk, bytes.Repeat([]byte{0xff}, 3<<20), 0o644))
	}

	blank()
	out, err := action(t, path, "image2disk", "IMG_URL="+srv.URL+"/disk.img", "DEST_DISK="+disk, "SHA256="+sum(image))
	require.NoError(t, err, out)
	require.Contains(t, out, "image2disk: streamed 1400000 bytes from "+srv.URL+"/disk.img onto "+disk+", sha256 "+sum(image)+" (checked)")
	got, _ := os.ReadFile(disk)
	require.Equal(t, image, got[:len(image)])
	require.Equal(t, byte(0xff), got[len(image)], "bytes after the image are left alone")

	t.Run("ChecksumMismatch", func(t *testing.T) {
		blank()
		out, err := action(t, path, "image2disk", "IMG_URL="+srv.URL+"/disk.img", "DEST_DISK="+disk, "SHA256="+sum([]byte("other")))
		require.Error(t, err)
		require.Contains(t, out, "image2disk: sha256 mismatch: got "+sum(image)+", want "+sum([]byte("other"))+"; zeroed the first MiB of "+disk)
		got, _ := os.ReadFile(disk)
		require.Equal(t, make([]byte, 1<<20), got[:1<<20], "a damaged image must not boot")
	})
	t.Run("Compressed", func(t *testing.T) {
		blank()
		out, err := action(t, path, "image2disk", "IMG_URL="+srv.URL+"/disk.img.gz", "DEST_DISK="+disk, "COMPRESSED=true", "SHA256="+sum(gz.Bytes()))
		require.NoError(t, err, out)
		got, _ := os.ReadFile(disk)
		require.Equal(t, image, got[:len(image)])
	})
	t.Run("DownloadFails", func(t *testing.T) {
		out, err := action(t, path, "image2disk", "IMG_URL="+srv.URL+"/missing.img", "DEST_DISK="+disk)
		require.Error(t, err)
		require.Contains(t, out, "image2disk: download failed")
	})
	t.Run("MissingSettings", func(t *testing.T) {
		out, err := action(t, path, "image2disk", "DEST_DISK="+disk)
		require.Error(t, err)
		require.Contains(t, out, "IMG_URL is required")
	})

	t.Run("WriteFile", func(t *testing.T) {
		blank()
		out, err := action(t, path, "writefile", "DEST_DISK="+disk, "OFFSET=1048576", "CONTENTS=hello from tinkops")
		require.NoError(t, err, out)
		require.Contains(t, out, "writefile: wrote 18 bytes at offset 1048576 of "+disk)
		got, _ := os.ReadFile(disk)
		require.Equal(t, "hello from tinkops", string(got[1<<20:1<<20+18]))
		require.Equal(t, byte(0xff), got[1<<20+18])
		require.Len(t, got, 3<<20, "the disk is not truncated")

		out, err = action(t, path, "writefile", "DEST_DISK="+disk, "DEST_PATH=/etc/motd", "FS_TYPE=ext4", "CONTENTS=x")
		require.Error(t, err)
		require.Contains(t, out, "writefile: DEST_PATH/FS_TYPE need a filesystem")
		out, err = action(t, path, "writefile", "DEST_DISK="+disk, "OFFSET=12k", "CONTENTS=x")
		require.Error(t, err)
		require.Contains(t, out, "writefile: OFFSET 12k is not a number of bytes")
	})
	t.Run("RebootDelay", func(t *testing.T) {
		// Only the refusal: a reboot action that runs reboots this machine.
		out, err := action(t, path, "reboot", "DELAY=soon")
		require.Error(t, err)
		require.Contains(t, out, "reboot: DELAY soon is not a number of seconds")
	})
}
