package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostileTemplate is a template whose one action's environment value is
// expr, with a workflow for node-03 that uses it.
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
