package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

// setRepo writes a repository of n machines in rack r7 and a WorkflowSet
// over them.
func setRepo(t *testing.T, n int) string {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("templates/image.yaml", "version: \"0.1\"\nname: image\ntasks:\n  - name: main\n    worker: \"{{.device_1}}\"\n    actions:\n      - {name: write-image, image: image:v1, timeout: 600}\n")
	for i := 1; i <= n; i++ {
		write(fmt.Sprintf("hardware/node-%03d.yaml", i), fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%03d, labels: {rack: r7}}\nspec: {interfaces: [{dhcp: {mac: \"52:54:00:03:00:%02x\"}}]}\n", i, i))
	}
	write("sets/reimage.yaml", "apiVersion: tinkops.dev/v1alpha1\nkind: WorkflowSet\nmetadata: {name: reimage}\nspec:\n  templateRef: image\n  hardwareSelector: rack=r7\n  rollout: {maxInFlight: 5, maxFailures: 2}\n")
	return dir
}

// TestWorkflowSetCommands: tink diff --format markdown on a commit adding a
// set lists every machine it will re-image; tink workflowset list, get,
// resume and events show and steer the rollout.
func TestWorkflowSetCommands(t *testing.T) {
	ctx := context.Background()
	s := apitest.MustRunServer(t)
	repo := setRepo(t, 48)

	code, out, errOut := tinkAt(t, s, "diff", repo, "--format", "markdown")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, out, "**What happens when this merges:**\n\n- workflow set reimage: 48 machines in rack=r7 will run template image, at most 5 at a time, pausing after more than 2 failures\n")
	for i := 1; i <= 48; i++ {
		require.Contains(t, out, fmt.Sprintf("- workflow reimage-node-%03d (set reimage, in its wave) will start: node-%03d will run template image (1 action)\n", i, i))
	}

	_, err := reconciler.New(reconciler.Config{Store: s.Store}).Sync(ctx, reconciler.Snapshot{Revision: "main@sha1:1", FS: os.DirFS(repo)})
	require.NoError(t, err)
	code, out, errOut = tinkAt(t, s, "workflowset", "list")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, strings.Join([]string{
		"NAME      SELECTOR   TEMPLATE   MACHINES   DONE   RUNNING   WAITING   FAILED   WAVE   BUDGET   STATE",
		"reimage   rack=r7    image      48         0      0         48        0        0/10   2        rolling out",
	}, "\n")+"\n", out)

	// Three machines fail: the gate pauses the set.
	for _, hw := range []string{"node-004", "node-005", "node-009"} {
		run, err := s.Store.GetRun(ctx, state.RunKey{Workflow: "reimage-" + hw, Number: 1})
		require.NoError(t, err)
		run.State = state.RunFailed
		_, err = s.Store.PutRun(ctx, state.ActorReconciler, run)
		require.NoError(t, err)
	}
	page, err := s.Store.ListRuns(ctx, state.RunQuery{States: []state.RunState{state.RunPending}})
	require.NoError(t, err)
	require.Len(t, reconciler.NewRollout(s.Store, nil).Hold(ctx, page.Runs), 45, "paused: every waiting machine is held")

	code, out, _ = tinkAt(t, s, "workflowset", "get", "reimage")
	require.Equal(t, 0, code)
	require.Contains(t, out, "PAUSED")
	require.Contains(t, out, "run 0: FAILED 3, PENDING 45; at most 5 at a time, pausing after more than 2 failures\nfailed: node-004, node-005, node-009\n")
	require.Contains(t, out, "3 machines failed (node-004, node-005, node-009), more than maxFailures 2\nresume with: tink workflowset resume reimage")

	code, out, errOut = tinkAt(t, s, "workflowset", "resume", "reimage", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var ws client.WorkflowSet
	require.NoError(t, json.Unmarshal([]byte(out), &ws))
	require.False(t, ws.Status.Rollout.Paused)
	require.Empty(t, ws.Status.Rollout.Failed)
	require.Equal(t, 2, ws.Status.Rollout.FailureBudget)

	code, out, _ = tinkAt(t, s, "workflowset", "events", "reimage")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Contains(t, lines[0], "created")
	require.Contains(t, lines[1], "workflow set reimage paused: 3 machines failed (node-004, node-005, node-009)")
	require.True(t, strings.HasSuffix(lines[1], "[reconciler]"), lines[1])
	require.Contains(t, lines[2], "workflow set reimage resumed by api:anonymous; 3 failed machines are accepted (node-004, node-005, node-009)")
	require.True(t, strings.HasSuffix(lines[2], "[api:anonymous]"), lines[2])

	code, _, errOut = tinkAt(t, s, "workflowset", "get", "nope")
	require.Equal(t, 1, code)
	require.Equal(t, "tink: workflow set nope not found\n", errOut)
}
