package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"

	"github.com/tinkops/tinkops/api"
)

// writeHostileTemplate writes a template whose one action's environment
// value is expr, with a workflow for node-03 that uses it.
func writeHostileTemplate(t *testing.T, repo, expr string) {
	t.Helper()
	writeFiles(t, repo, map[string]string{
		"templates/hostile.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata:
  name: hostile
spec:
  data: |
    version: "0.1"
    name: hostile
    global_timeout: 600
    tasks:
      - name: t
        worker: "{{.device_1}}"
        actions:
          - name: a
            image: busybox:latest
            timeout: 60
            environment:
              X: "` + expr + `"
`,
		"workflows/hostile.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: hostile
spec:
  templateRef: hostile
  hardwareRef: node-03
  hardwareMap:
    device_1: 52:54:00:10:00:03
`,
	})
}

// syncStatus reads /v1/status's sync block.
func syncStatus(t *testing.T, m *Main) map[string]any {
	t.Helper()
	_, doc := get(t, m, "/v1/status")
	st, _ := doc["sync"].(map[string]any)
	return st
}

// TestRenderBombDoesNotStallSync: one template line of three nested
// `range (until 100000)` used to keep the reconciler busy forever (/readyz
// 503, no later revision applied). It is now a positioned error in the
// template, and the next revision applies.
func TestRenderBombDoesNotStallSync(t *testing.T) {
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	writeHostileTemplate(t, repo, "{{ range until 100000 }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}")
	m := MustRunMain(t, repo)
	waitReady(t, m)
	var first map[string]any
	require.Eventually(t, func() bool {
		st := syncStatus(t, m)
		errs, _ := st["errors"].([]any)
		if len(errs) == 0 {
			return false
		}
		first = errs[0].(map[string]any)
		return true
	}, 15*time.Second, 50*time.Millisecond)
	require.Equal(t, "templates/hostile.yaml", first["file"])
	require.EqualValues(t, 18, first["line"], "the error points at the template's line")
	require.Contains(t, first["message"], "budget of 100000 loop iterations")

	require.NoError(t, os.Remove(filepath.Join(repo, "workflows", "hostile.yaml")))
	require.NoError(t, os.Remove(filepath.Join(repo, "templates", "hostile.yaml")))
	require.Eventually(t, func() bool {
		st := syncStatus(t, m)
		errs, _ := st["errors"].([]any)
		applied, _ := st["lastAppliedRevision"].(string)
		return len(errs) == 0 && applied == st["lastAttemptedRevision"]
	}, 15*time.Second, 50*time.Millisecond, "the next revision applies")
}

// TestSyncTimeoutBoundsRendering: a rendering that stays within its step
// and data budgets but runs long (comparing two 2 MiB strings 99,000
// times) is stopped by --sync-timeout: the server becomes ready, stays
// responsive, and a good revision pushed after it applies.
func TestSyncTimeoutBoundsRendering(t *testing.T) {
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	writeHostileTemplate(t, repo, `{{ $a := repeat 65536 `+"`ab`"+` }}{{ $b := repeat 65536 `+"`ab`"+` }}{{ range until 4 }}{{ $a = print $a $a }}{{ $b = print $b $b }}{{ end }}{{ range until 99000 }}{{ if eq $a $b }}{{ end }}{{ end }}`)
	m := MustRunMain(t, repo, "--sync-timeout", "1s")
	start := time.Now()
	waitReady(t, m)
	require.Less(t, time.Since(start), 8*time.Second, "the first sync ended at its deadline, not when the rendering finished")
	code, _ := get(t, m, "/v1/status")
	require.Equal(t, http.StatusOK, code)

	b, err := os.ReadFile(filepath.Join(repo, "templates", "hostile.yaml"))
	require.NoError(t, err)
	i := strings.Index(string(b), `X: "`)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "templates", "hostile.yaml"), append(b[:i:i], []byte("X: \"fine\"\n")...), 0o644))
	require.Eventually(t, func() bool {
		st := syncStatus(t, m)
		errs, _ := st["errors"].([]any)
		applied, _ := st["lastAppliedRevision"].(string)
		return len(errs) == 0 && applied != "" && applied == st["lastAttemptedRevision"]
	}, 20*time.Second, 50*time.Millisecond, "the good revision applies")
}

// TestLinksOutOfTheRepositoryNeverShow: a repository directory with a link
// to a BMC password in the secrets folder and one to /etc/passwd. Neither
// file's content reaches /v1/status, the events or the logs; a link inside
// the repository is still read.
func TestLinksOutOfTheRepositoryNeverShow(t *testing.T) {
	passwd, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	firstLine, _, _ := strings.Cut(string(passwd), "\n")
	require.NotEmpty(t, firstLine)

	secrets := t.TempDir()
	writeFiles(t, secrets, map[string]string{"bmc-node-01/username": "admin", "bmc-node-01/password": "hunter2-SECRET\n"})
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	require.NoError(t, os.Symlink(filepath.Join(secrets, "bmc-node-01", "password"), filepath.Join(repo, "hardware", "leak.yaml")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(repo, "passwd.yaml")))
	require.NoError(t, os.Symlink("node-01.yaml", filepath.Join(repo, "hardware", "alias.yaml")))

	var logs apitest.Buffer
	m := NewMain(&logs, &logs)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--repo", repo, "--secrets-dir", secrets, "--log-level", "debug"}))
	require.NoError(t, m.Open(context.Background()))
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	waitReady(t, m)

	// The link inside the repository is read: node-01 is declared twice.
	var errs []any
	require.Eventually(t, func() bool {
		errs, _ = syncStatus(t, m)["errors"].([]any)
		return len(errs) > 0
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, fmt.Sprint(errs), "hardware/alias.yaml")

	resp, err := http.Get("http://" + m.Addr() + "/v1/status")
	require.NoError(t, err)
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = http.Get("http://" + m.Addr() + "/v1/events")
	require.NoError(t, err)
	events, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for what, text := range map[string]string{"status": string(status), "events": string(events), "logs": logs.String()} {
		require.NotContains(t, text, "hunter2", what)
		require.NotContains(t, text, firstLine, what)
		require.NotContains(t, text, firstLine[:min(len(firstLine), 12)], what)
	}
	require.Contains(t, logs.String(), "leads out of the repository", "the operator is told why the files were left out")
}

// tarGz packs a directory as POST /v1/plan takes it.
func tarGz(t *testing.T, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	require.NoError(t, tw.AddFS(os.DirFS(dir)))
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// TestPlanStopsWhenItsClientLeaves: a viewer's plan of a repository whose
// template renders for long stops when the client gives up, so its slot
// (two plans run at once) is free again at once rather than when the
// rendering would have ended.
func TestPlanStopsWhenItsClientLeaves(t *testing.T) {
	m := MustRunMain(t, copyDir(t, filepath.Join("..", "..", "examples", "repo")))
	waitReady(t, m)
	slow := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	writeHostileTemplate(t, slow, `{{ $a := repeat 65536 `+"`ab`"+` }}{{ $b := repeat 65536 `+"`ab`"+` }}{{ range until 4 }}{{ $a = print $a $a }}{{ $b = print $b $b }}{{ end }}{{ range until 99000 }}{{ if eq $a $b }}{{ end }}{{ end }}`)
	slowBody, goodBody := tarGz(t, slow), tarGz(t, copyDir(t, filepath.Join("..", "..", "examples", "repo")))
	post := func(c *http.Client, body []byte) (int, error) {
		resp, err := c.Post("http://"+m.Addr()+"/v1/plan", "application/gzip", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var wg sync.WaitGroup
	for range api.MaxConcurrentPlans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := post(&http.Client{Timeout: 500 * time.Millisecond}, slowBody)
			require.Error(t, err, "the slow plan outlives its client")
		}()
	}
	wg.Wait()
	// The renderings stop within moments; before, they held both slots
	// for as long as they ran (5 s, the rendering's own limit).
	require.Eventually(t, func() bool {
		code, err := post(http.DefaultClient, goodBody)
		return err == nil && code == http.StatusOK
	}, 3*time.Second, 100*time.Millisecond, "a plan runs once the clients that left freed their slots")
}
