package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestTasksOnSeveralMachines: a Tinkerbell template whose tasks run on two
// machines (device_2 is node-10's MAC in a workflow of node-09) runs with
// two real tink-workers: each task goes to its machine's worker, in the
// template's order, and node-10 is held while the run lasts (a workflow of
// node-10's own waits for it).
func TestTasksOnSeveralMachines(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	out := filepath.Join(t.TempDir(), "out.txt")
	action := func(step string) string {
		return fmt.Sprintf(`      - name: step-%s
        image: shell:v1
        timeout: 30
        command: ["/bin/sh", "-c", "sleep 0.3; echo %s $PWD >> %s"]
`, step, step, out)
	}
	hw := func(name, mac string) string {
		return fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: %s}\nspec:\n  interfaces: [{dhcp: {mac: %q}}]\n", name, mac)
	}
	writeFiles(t, repo, map[string]string{
		"hardware/node-09.yaml": hw("node-09", "52:54:00:00:00:09"),
		"hardware/node-10.yaml": hw("node-10", "52:54:00:00:00:10"),
		"templates/pair.yaml": `version: "0.1"
name: pair
global_timeout: 120
tasks:
  - name: server
    worker: "{{.device_1}}"
    actions:
` + action("1") + `  - name: peer
    worker: "{{.device_2}}"
    actions:
` + action("2") + `  - name: finish
    worker: "{{.device_1}}"
    actions:
` + action("3"),
		"templates/solo.yaml": `version: "0.1"
name: solo
global_timeout: 120
tasks:
  - name: only
    worker: "{{.device_1}}"
    actions:
` + action("solo"),
		"workflows/pair.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: pair}
spec:
  templateRef: pair
  hardwareRef: node-09
  hardwareMap: {device_1: "52:54:00:00:00:09", device_2: "52:54:00:00:00:10"}
`,
		"workflows/solo.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: solo}
spec: {templateRef: solo, hardwareRef: node-10, hardwareMap: {device_1: "52:54:00:00:00:10"}}
`,
	})
	m := MustRunMain(t, repo)
	waitReady(t, m)
	bin := buildWorker(t)
	dir09, dir10 := t.TempDir(), t.TempDir()
	startWorkerIn(t, bin, m.Addr(), "52:54:00:00:00:09", dir09)
	startWorkerIn(t, bin, m.Addr(), "node-10", dir10)

	// While pair runs, solo waits for node-10.
	waiting := waitRun(t, m.Store, "solo", 30*time.Second, func(r *state.WorkflowRun) bool { return r.State == state.RunPending && r.Reason != "declared in Git" })
	require.Equal(t, "waits for pair#1, RUNNING on node-10", waiting.Reason)

	pair := waitRun(t, m.Store, "pair", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, pair.State, pair.Reason)
	require.Equal(t, []string{"node-10"}, pair.Machines)
	solo := waitRun(t, m.Store, "solo", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, solo.State, solo.Reason)
	require.False(t, solo.StartedAt.Before(pair.FinishedAt), "node-10 was held until pair ended")

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 4, "%s", b)
	for i, want := range []struct{ step, dir string }{{"1", dir09}, {"2", dir10}, {"3", dir09}, {"solo", dir10}} {
		step, pwd, _ := strings.Cut(lines[i], " ")
		require.Equal(t, want.step, step, "in the template's order: %s", b)
		require.True(t, strings.HasPrefix(pwd, want.dir), "step %s ran on the worker of its task's machine (%s, want under %s)", step, pwd, want.dir)
	}

	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "pair", Types: []state.EventType{state.EventActionState}}})
	require.NoError(t, err)
	var story []string
	for _, e := range evs {
		story = append(story, e.Message)
	}
	require.Contains(t, strings.Join(story, "\n"), "action peer/step-2: SUCCESS on 52:54:00:00:00:10")
}
