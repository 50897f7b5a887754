package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	return procStatusKB(t, b, "VmHWM") << 10
}

// procStatusKB reads one "Name:   123 kB" line of /proc/PID/status.
func procStatusKB(tb testing.TB, status []byte, name string) int64 {
	tb.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+) kB`).FindSubmatch(status)
	require.NotNil(tb, m, "no %s in /proc/PID/status", name)
	kb, err := strconv.ParseInt(string(m[1]), 10, 64)
	require.NoError(tb, err)
	return kb
}

// labelBomb is a Hardware of 868 KiB with 60,000 labels.
func labelBomb(name string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata:\n  name: %s\n  labels:\n", name)
	for i := range 60_000 {
		fmt.Fprintf(&b, "    l%06d: v\n", i)
	}
	b.WriteString("spec:\n  interfaces: [{dhcp: {mac: \"52:54:00:77:00:01\"}}]\n")
	return b.Bytes()
}

// planBomb is a gzipped tar that is small on the wire and large unpacked:
// files of just under 1 MiB (the per-file limit) of one-character list
// items, as many as fit in about 2.2 MiB compressed.
func planBomb(t *testing.T, maxFiles int) []byte {
	t.Helper()
	var item bytes.Buffer
	item.WriteString("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: x}\nspec:\n  metadata:\n    custom:\n")
	for item.Len() < 1<<20-16 {
		item.WriteString("      - a\n")
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for i := 0; out.Len() < 2200<<10 && i < maxFiles; i++ {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("hardware/h%04d.yaml", i), Mode: 0o644, Size: int64(item.Len()), Typeflag: tar.TypeReg}))
		_, err := tw.Write(item.Bytes())
		require.NoError(t, err)
		if i%50 == 0 {
			require.NoError(t, zw.Flush())
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// TestMemoryUnderHostileRequests: the attacks of a hostile client, on a
// real tink-server process: eight 868 KiB Hardware of 60,000 labels at
// once, then eight 2.2 MiB plan tarballs at once. Every request gets a
// clear refusal, and the process's peak memory stays far below the 1 GiB
// limit of the shipped Deployment (examples/deploy).
func TestMemoryUnderHostileRequests(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tink-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	cmd := exec.Command(bin, "--repo", copyDir(t, filepath.Join("..", "..", "examples", "repo")), "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
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
	idle := peakRSS(t, cmd.Process.Pid)

	parallel := func(n int, body func(i int) []byte, path, contentType string) []string {
		var wg sync.WaitGroup
		answers := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(base+path, contentType, bytes.NewReader(body(i)))
				if err != nil {
					answers[i] = err.Error()
					return
				}
				defer resp.Body.Close()
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				answers[i] = fmt.Sprintf("%d %s", resp.StatusCode, msg)
			}()
		}
		wg.Wait()
		return answers
	}

	bombs := make([][]byte, 8)
	for i := range bombs {
		bombs[i] = labelBomb(fmt.Sprintf("bomb-%d", i))
	}
	require.InDelta(t, 868<<10, len(bombs[0]), 20<<10)
	for _, a := range parallel(8, func(i int) []byte { return bombs[i] }, "/v1/hardware", "application/yaml") {
		require.True(t, strings.HasPrefix(a, "400 "), a)
		require.Contains(t, a, `"path":"metadata.labels","line":5,"column":3,"object":"Hardware/bomb-`)
		require.Contains(t, a, "60000 entries; the limit is 256")
	}
	afterHardware := peakRSS(t, cmd.Process.Pid)

	// As many 1 MiB files as 2.2 MiB of gzip holds: refused unpacked.
	tarball := planBomb(t, 4000)
	t.Logf("plan tarball: %d KiB", len(tarball)>>10)
	codes := map[string]int{}
	for _, a := range parallel(8, func(int) []byte { return tarball }, "/v1/plan", "application/gzip") {
		codes[a[:3]]++
		switch a[:3] {
		case "413":
			require.Contains(t, a, "the repository unpacks to more than")
		case "503":
			require.Contains(t, a, "plans are already running on this server")
		default:
			t.Fatalf("unexpected answer %s", a)
		}
	}
	require.Positive(t, codes["413"])
	afterBomb := peakRSS(t, cmd.Process.Pid)

	// Within the unpacked limit (30 files of 1 MiB): the plans that run
	// load it all and report its errors.
	tarball = planBomb(t, 30)
	codes = map[string]int{}
	for _, a := range parallel(8, func(int) []byte { return tarball }, "/v1/plan", "application/gzip") {
		codes[a[:3]]++
		switch a[:3] {
		case "200":
			require.Contains(t, a, "104846 items; the limit is 1000")
		case "503":
			require.Contains(t, a, "plans are already running on this server")
		default:
			t.Fatalf("unexpected answer %s", a)
		}
	}
	require.Positive(t, codes["200"])
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("peak RSS: idle %d MiB, after the Hardware attack %d MiB, after the plan bombs %d MiB, after the plans within limits %d MiB; answers %v",
		idle>>20, afterHardware>>20, afterBomb>>20, peak>>20, codes)
	// Before these limits: 2.7 GB for the eight Hardware, over 7 GB for
	// the plans.
	require.Less(t, peak, int64(512<<20), "peak RSS must stay well under the Deployment's 1 GiB limit")
}
