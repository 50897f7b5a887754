package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// writeTokens writes an auth file of tokens (name -> role, hardware) and
// returns its path; each token's secret is "secret-<name>".
func writeTokens(t *testing.T, tokens ...api.Token) string {
	t.Helper()
	var b strings.Builder
	for _, tk := range tokens {
		b.WriteString("- {name: " + tk.Name + ", role: " + string(tk.Role) + ", sha256: " + api.HashToken("secret-"+tk.Name))
		if tk.Hardware != "" {
			b.WriteString(", hardware: " + tk.Hardware)
		}
		b.WriteString("}\n")
	}
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

func tokenClient(t *testing.T, m *Main, name string) *client.Client {
	t.Helper()
	c, err := client.New("http://"+m.Addr(), "secret-"+name, nil)
	require.NoError(t, err)
	return c
}

func statusOf(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.StatusCode
	}
	return 0
}

// TestWorkerTokenBoundToOneHardwareObject: hardware other/node-01 (another
// namespace, its own MAC) is another machine than node-01, so node-01's
// worker token reads none of its actions (by MAC: 403; by name: nothing
// handed out) and none of its reports are taken, while other/node-01's own
// token runs it, and the events name it with its namespace.
func TestWorkerTokenBoundToOneHardwareObject(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": e2eHardware,
		"hardware/other-node-01.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01, namespace: other}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:02"}}]
`,
		"templates/wipe.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata: {name: wipe, namespace: other}
spec:
  data: |
    version: "0.1"
    name: wipe
    global_timeout: 300
    tasks:
      - name: main
        worker: "{{.device_1}}"
        actions:
          - name: wipe
            image: shell:v1
            timeout: 60
            environment: {DISK_KEY: the-disk-key-of-other}
`,
		"workflows/wipe.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wipe, namespace: other}
spec: {templateRef: wipe, hardwareRef: node-01, hardwareMap: {device_1: "52:54:00:00:00:02"}}
`,
	})
	tokens := writeTokens(t,
		api.Token{Name: "admin", Role: api.RoleAdmin},
		api.Token{Name: "w-node-01", Role: api.RoleWorker, Hardware: "node-01"},
		api.Token{Name: "w-other-node-01", Role: api.RoleWorker, Hardware: "other/node-01"})
	m := MustRunMain(t, repo, "--auth-file", tokens)
	waitReady(t, m)
	key := state.RunKey{Namespace: "other", Workflow: "wipe", Number: 1}
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(ctx, key)
		return err == nil && r.State == state.RunRunning
	}, 10*time.Second, 20*time.Millisecond, "%v", func() any {
		st, _ := m.Store.SyncStatus(ctx)
		r, _ := m.Store.GetRun(ctx, key)
		return fmt.Sprintf("%+v %+v", *st, r)
	}())

	mine, theirs := tokenClient(t, m, "w-node-01"), tokenClient(t, m, "w-other-node-01")
	_, err := mine.NextAction(ctx, "52:54:00:00:00:02", 0)
	require.Equal(t, http.StatusForbidden, statusOf(err), "other/node-01's MAC with node-01's token: %v", err)
	require.ErrorContains(t, err, "hardware other/node-01")
	a, err := mine.NextAction(ctx, "node-01", 300*time.Millisecond)
	require.NoError(t, err)
	require.Nil(t, a, "node-01's worker is handed other/node-01's action")

	// The machine's own worker gets it, by MAC or by its bare name.
	a, err = theirs.NextAction(ctx, "node-01", time.Second)
	require.NoError(t, err)
	require.NotNil(t, a)
	require.Equal(t, "the-disk-key-of-other", a.Environment["DISK_KEY"])
	again, err := theirs.NextAction(ctx, "52:54:00:00:00:02", time.Second)
	require.NoError(t, err)
	require.Equal(t, a.Attempt, again.Attempt)
	_, err = theirs.NextAction(ctx, "52:54:00:00:00:01", 0)
	require.Equal(t, http.StatusForbidden, statusOf(err), "node-01's MAC with other/node-01's token")

	// node-01's token reports SUCCESS for it: refused either way.
	rep := client.WorkerReport{Namespace: "other", Workflow: "wipe", Run: 1, Action: 0, Attempt: a.Attempt, State: state.RunSuccess}
	err = mine.ReportAction(ctx, "node-01", rep)
	require.Equal(t, http.StatusConflict, statusOf(err), "%v", err)
	err = mine.ReportAction(ctx, "52:54:00:00:00:02", rep)
	require.Equal(t, http.StatusForbidden, statusOf(err), "%v", err)
	run, err := m.Store.GetRun(ctx, key)
	require.NoError(t, err)
	require.Equal(t, state.RunRunning, run.Actions[0].State, "a report from another machine's token changed the action")

	require.NoError(t, theirs.ReportAction(ctx, "52:54:00:00:00:02", rep))
	run, err = m.Store.GetRun(ctx, key)
	require.NoError(t, err)
	require.Equal(t, state.RunSuccess, run.State)
	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Namespace: "other", Name: "wipe"}})
	require.NoError(t, err)
	var actors []state.Actor
	for _, ev := range evs {
		if ev.Type == state.EventActionState {
			actors = append(actors, ev.Actor)
		}
	}
	require.NotEmpty(t, actors)
	for _, ac := range actors {
		require.Equal(t, state.Actor("worker:other/node-01"), ac)
	}
}
