package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestHardwareCacheFollowsChanges: the engine keeps the hardware workers
// name, and while it runs, a hardware changed, created or deleted in the
// store reaches it through the event log, not after an expiry: with
// expiry off, a new MAC, a removed MAC and a deleted machine are each
// seen, and an unchanged cache keeps answering.
func TestHardwareCacheFollowsChanges(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0)
	f.e.NeverExpireHardware()
	runEngine(t, f.e)

	id, err := f.e.Resolve(ctx, "node-01")
	require.NoError(t, err)
	require.Equal(t, "node-01", id.Metadata.Name)
	_, err = f.e.Resolve(ctx, "52:54:00:00:00:09")
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))

	// node-01 takes a second MAC: found by it; its record in the cache is
	// the new one.
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-01"}
	o, err := f.st.GetObject(ctx, key)
	require.NoError(t, err)
	o.Spec = json.RawMessage(`{"disks":[{"device":"/dev/sdb"}],"interfaces":[{"dhcp":{"mac":"52:54:00:00:00:01"}},{"dhcp":{"mac":"52:54:00:00:00:09"}}]}`)
	_, err = f.st.PutObject(ctx, state.APIUser("t"), o)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		hw, err := f.e.Resolve(ctx, "node-01")
		return err == nil && hw.Spec.Disks[0].Device == "/dev/sdb"
	}, 10*time.Second, 5*time.Millisecond, "the changed hardware is seen")
	require.Eventually(t, func() bool {
		hw, err := f.e.Resolve(ctx, "52:54:00:00:00:09")
		return err == nil && hw.Metadata.Name == "node-01"
	}, 10*time.Second, 5*time.Millisecond, "its new MAC names it")

	// The machine is deleted: no name or MAC finds it any more.
	require.NoError(t, f.st.DeleteObject(ctx, state.APIUser("t"), key, 0))
	require.Eventually(t, func() bool {
		_, err1 := f.e.Resolve(ctx, "node-01")
		_, err2 := f.e.Resolve(ctx, "52:54:00:00:00:01")
		return state.ErrorCode(err1) == state.ENOTFOUND && state.ErrorCode(err2) == state.ENOTFOUND
	}, 10*time.Second, 5*time.Millisecond, "the deleted hardware is gone")
}

// runEngine runs e until the test ends.
func runEngine(t *testing.T, e *workflow.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// TestPreparingKeepsNoHardware: preparing a run checks that its tasks'
// workers are known MACs, but what that check decodes is not kept: the
// cache holds the machines whose workers ask, not every machine with a
// run (10,000 decoded machines at 10,000 runs, 16 MB, idle).
func TestPreparingKeepsNoHardware(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0, "wf-1")
	f.e.Step(ctx)
	require.Equal(t, state.RunRunning, f.run(t, "wf-1", 1).State, "the run was prepared")
	require.Zero(t, f.e.CachedHardware(), "preparing kept no hardware")
	_, err := f.e.Next(ctx, "52:54:00:00:00:01", 0)
	require.NoError(t, err)
	require.Equal(t, 1, f.e.CachedHardware(), "the worker's machine is kept")
}

// TestTemplateParsedPerVersion: runs starting on one template share one
// decoded and parsed copy of it, kept while its resource version holds; a
// changed template is parsed again, and a run starting after the change
// renders the new text.
func TestTemplateParsedPerVersion(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	fsys := fstest.MapFS{"templates/provision.yaml": {Data: []byte(fmt.Sprintf(tmplFile, "wipe:v1"))}}
	machine := func(i int) {
		fsys[fmt.Sprintf("hardware/node-%02d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-%02d}\nspec:\n  disks: [{device: /dev/sda}]\n  interfaces: [{dhcp: {mac: \"52:54:00:00:00:%02d\"}}]\n", i, i))}
		fsys[fmt.Sprintf("workflows/wf-%d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf-%d}\nspec: {templateRef: provision, hardwareRef: node-%02d, hardwareMap: {device_1: \"52:54:00:00:00:%02d\"}}\n", i, i, i))}
	}
	machine(1)
	machine(2)
	rec := reconciler.New(reconciler.Config{Store: st})
	sync := func(rev string) {
		out, err := rec.Sync(ctx, reconciler.Snapshot{Revision: rev, FS: fsys})
		require.NoError(t, err)
		require.True(t, out.Applied, "%v", out.Errors)
	}
	sync("r1")
	e := workflow.New(workflow.Config{Store: st})
	key := state.ObjectKey{Kind: state.KindTemplate, Name: "provision"}
	// image is the first action's image of wf's run once it runs.
	image := func(wf string) string {
		r, err := st.GetRun(ctx, state.RunKey{Workflow: wf, Number: 1})
		if err != nil || r.State != state.RunRunning {
			return ""
		}
		return r.Actions[0].Image
	}
	runEngine(t, e)

	require.Eventually(t, func() bool { return image("wf-1") == "wipe:v1" && image("wf-2") == "wipe:v1" },
		10*time.Second, 5*time.Millisecond, "both runs start")
	o, err := st.GetObject(ctx, key)
	require.NoError(t, err)
	first, rv := e.CachedTemplate(key)
	require.NotNil(t, first, "the template is kept")
	require.Equal(t, o.ResourceVersion, rv)

	fsys["templates/provision.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(tmplFile, "wipe:v2"))}
	machine(3)
	sync("r2")
	require.Eventually(t, func() bool { return image("wf-3") == "wipe:v2" },
		10*time.Second, 5*time.Millisecond, "the changed template is rendered")
	o, err = st.GetObject(ctx, key)
	require.NoError(t, err)
	again, rv := e.CachedTemplate(key)
	require.Equal(t, o.ResourceVersion, rv)
	require.NotSame(t, first, again, "parsed again at its new version")
}

// tmplFile is a template file whose first action runs image %s.
const tmplFile = `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata: {name: provision}
spec:
  data: |
    version: "0.1"
    name: provision
    global_timeout: 600
    tasks:
      - name: disk
        worker: "{{.device_1}}"
        actions:
          - name: wipe
            image: %s
            timeout: 60
`
