package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestWorkerOfANamesake: node-01 and other/node-01 are two machines. A
// worker id namespace/name names the second; the first's worker is handed
// none of the second's actions and its reports on them are refused; the
// events of the second's worker name its namespace.
func TestWorkerOfANamesake(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	other := strings.Replace(strings.Replace(hw1, "{name: node-01}", "{name: node-01, namespace: other}", 1), ":01\"", ":02\"", 1)
	template := "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: provision, namespace: other}\nspec:\n  data: |\n    " +
		strings.ReplaceAll(strings.TrimSpace(fmt.Sprintf(tmpl, 0)), "\n", "\n    ") + "\n"
	fsys := fstest.MapFS{
		"hardware/node-01.yaml":       {Data: []byte(hw1)},
		"hardware/other-node-01.yaml": {Data: []byte(other)},
		"templates/provision.yaml":    {Data: []byte(template)},
		"workflows/wf.yaml": {Data: []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wf, namespace: other}
spec: {templateRef: provision, hardwareRef: node-01, hardwareMap: {device_1: "52:54:00:00:00:02"}}
`)},
	}
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(ctx, reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	e := workflow.New(workflow.Config{Store: st})
	e.Step(ctx)

	hw, err := e.Resolve(ctx, "other/node-01")
	require.NoError(t, err)
	require.Equal(t, "other", hw.Metadata.Namespace)
	hw, err = e.Resolve(ctx, "node-01")
	require.NoError(t, err)
	require.Equal(t, "", hw.Metadata.Namespace, "a bare name is the default namespace's")

	a, err := e.Next(ctx, "node-01", 0)
	require.NoError(t, err)
	require.Nil(t, a, "node-01's worker is handed other/node-01's action")
	a, err = e.Next(ctx, "other/node-01", 0)
	require.NoError(t, err)
	require.NotNil(t, a)
	rep := workflow.Report{Namespace: "other", Workflow: "wf", Run: 1, Action: a.Action, Attempt: a.Attempt, State: state.RunSuccess}
	_, err = e.Report(ctx, "node-01", rep)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
	require.ErrorContains(t, err, "belongs to worker 52:54:00:00:00:02, not node-01")
	_, err = e.Report(ctx, "other/node-01", rep)
	require.NoError(t, err)

	evs, err := st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventActionState}}})
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	for _, ev := range evs {
		require.Equal(t, state.Actor("worker:other/node-01"), ev.Actor, ev.Message)
	}
}
