package schema

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// renderRepo is three machines with a workflow each. The template reads
// the hardware (.Hardware and .hardware), the workflow's hardwareMap, and
// its second task runs on node-03 by MAC, so every workflow's rendering
// depends on node-03 being declared.
func renderRepo() fstest.MapFS {
	fsys := fstest.MapFS{"templates/provision.yaml": {Data: []byte(renderTemplate("600"))}}
	for i := 1; i <= 3; i++ {
		fsys[fmt.Sprintf("hardware/node-%02d.yaml", i)] = &fstest.MapFile{Data: []byte(renderHardware(i, "/dev/sda"))}
		fsys[fmt.Sprintf("workflows/wf-%02d.yaml", i)] = &fstest.MapFile{Data: []byte(renderWorkflow(i, "b"))}
	}
	return fsys
}

func renderTemplate(timeout string) string {
	return `version: "0.1"
name: provision
global_timeout: 3600
tasks:
  - name: install
    worker: "{{.device_1}}"
    actions:
      - name: wipe
        image: wipe:v1
        timeout: ` + timeout + `
        environment:
          DISK: {{ index .Hardware.Disks 0 }}
          SECOND: "{{ .device_2 }}"
          RACK: "{{ .hardware.metadata.labels.rack }}"
  - name: report
    worker: "52:54:00:00:00:3a"
    actions:
      - name: tell
        image: tell:v1
        timeout: 60
`
}

func renderHardware(i int, disk string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-%02d, labels: {rack: r1}}
spec:
  disks: [{device: %s}]
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:%da"}
    - dhcp: {mac: "52:54:00:00:00:%db"}
`, i, disk, i, i)
}

// renderWorkflow maps device_2 to the machine's MAC ending in second.
func renderWorkflow(i int, second string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wf-%02d}
spec:
  templateRef: provision
  hardwareRef: node-%02d
  hardwareMap: {device_1: "52:54:00:00:00:%da", device_2: "52:54:00:00:00:%d%s"}
`, i, i, i, i, second)
}

func env(t *testing.T, s *Set, wf string) map[string]string {
	t.Helper()
	for _, w := range s.Workflows {
		if w.Metadata.Name == wf {
			require.NotNil(t, w.Rendered, wf)
			return w.Rendered.Tasks[0].Actions[0].Environment
		}
	}
	t.Fatalf("no workflow %s", wf)
	return nil
}

// TestRenderCache: a Load renders again only the workflows whose template,
// hardware, workflow or repository defaults changed, and still runs the
// checks that depend on the whole set.
func TestRenderCache(t *testing.T) {
	ctx := context.Background()
	l := NewLoader()
	fsys := renderRepo()
	load := func() (*Set, error) { return l.Load(ctx, hashMapFS{fsys}) }
	executed := func() int64 { return l.renders.executed.Load() }

	set, err := load()
	require.NoError(t, err)
	require.Equal(t, int64(3), executed())
	require.Equal(t, "/dev/sda", env(t, set, "wf-02")["DISK"])

	t.Run("NothingChanged", func(t *testing.T) {
		again, err := load()
		require.NoError(t, err)
		require.Equal(t, int64(3), executed(), "nothing rendered again")
		for i := range set.Workflows {
			require.Equal(t, set.Workflows[i].Rendered, again.Workflows[i].Rendered)
		}
	})
	t.Run("HardwareChanged", func(t *testing.T) {
		fsys["hardware/node-02.yaml"] = &fstest.MapFile{Data: []byte(renderHardware(2, "/dev/nvme0n1"))}
		set, err := load()
		require.NoError(t, err)
		require.Equal(t, int64(4), executed(), "only wf-02 rendered again")
		require.Equal(t, "/dev/nvme0n1", env(t, set, "wf-02")["DISK"])
		require.Equal(t, "/dev/sda", env(t, set, "wf-01")["DISK"])
	})
	t.Run("WorkflowChanged", func(t *testing.T) {
		fsys["workflows/wf-01.yaml"] = &fstest.MapFile{Data: []byte(renderWorkflow(1, "a"))}
		set, err := load()
		require.NoError(t, err)
		require.Equal(t, int64(5), executed())
		require.Equal(t, "52:54:00:00:00:1a", env(t, set, "wf-01")["SECOND"])
		require.Equal(t, "52:54:00:00:00:3b", env(t, set, "wf-03")["SECOND"])
	})
	t.Run("TemplateChanged", func(t *testing.T) {
		fsys["templates/provision.yaml"] = &fstest.MapFile{Data: []byte(renderTemplate("-5"))}
		_, err := load()
		var list ErrorList
		require.ErrorAs(t, err, &list)
		require.Equal(t, int64(8), executed())
		require.Len(t, list, 1)
		want := "templates/provision.yaml:10:18: spec.data: tasks[0].actions[0].timeout: must be greater than 0 seconds, got -5 (rendered for workflow wf-01 and 2 more)"
		require.Equal(t, want, list[0].Error())
		require.Equal(t, "Template/provision", list[0].Object)

		// The same mistakes again, from the cache.
		_, err = load()
		require.ErrorAs(t, err, &list)
		require.Equal(t, int64(8), executed())
		require.Len(t, list, 1)
		require.Equal(t, want, list[0].Error())
		fsys["templates/provision.yaml"] = &fstest.MapFile{Data: []byte(renderTemplate("600"))}
		_, err = load()
		require.NoError(t, err)
		require.Equal(t, int64(11), executed())
	})
	t.Run("WorkerLeftTheSet", func(t *testing.T) {
		// node-03 goes: the other renderings are reused, and their
		// second task's worker is no longer a declared MAC.
		delete(fsys, "hardware/node-03.yaml")
		delete(fsys, "workflows/wf-03.yaml")
		_, err := load()
		var list ErrorList
		require.ErrorAs(t, err, &list)
		require.Equal(t, int64(11), executed(), "nothing rendered again")
		require.Len(t, l.cache.entries, len(fsys), "the files' cache entries are dropped")
		require.Len(t, list, 1)
		require.Equal(t, `templates/provision.yaml:16:13: spec.data: tasks[1].worker: worker "52:54:00:00:00:3a" is not the MAC address of any declared hardware (rendered for workflow wf-01 and 1 more)`, list[0].Error())

		fsys["hardware/node-03.yaml"] = &fstest.MapFile{Data: []byte(renderHardware(3, "/dev/sda"))}
		_, err = load()
		require.NoError(t, err)
		require.Equal(t, int64(11), executed())
	})
	t.Run("UnhashedLoadKeepsTheCache", func(t *testing.T) {
		// A pull request's repository, read from a directory: rendered
		// afresh, and the followed repository's renderings stay.
		n := executed()
		_, err := l.Load(ctx, fsys)
		require.NoError(t, err)
		require.Equal(t, n+2, executed())
		_, err = load()
		require.NoError(t, err)
		require.Equal(t, n+2, executed())
	})
	t.Run("DefaultsChanged", func(t *testing.T) {
		// tink.cue's labels reach .hardware: every rendering is redone.
		fsys["hardware/node-01.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01}
spec:
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:1a"}
`)}
		fsys["tink.cue"] = &fstest.MapFile{Data: []byte(`defaults: labels: rack: "r9"` + "\n")}
		set, err := load()
		require.NoError(t, err)
		require.Equal(t, "r9", env(t, set, "wf-01")["RACK"])
		require.Equal(t, "r1", env(t, set, "wf-02")["RACK"], "an object's own label wins")
		n := executed()
		fsys["tink.cue"] = &fstest.MapFile{Data: []byte(`defaults: labels: rack: "r7"` + "\n")}
		set, err = load()
		require.NoError(t, err)
		require.Equal(t, n+2, executed())
		require.Equal(t, "r7", env(t, set, "wf-01")["RACK"])
	})
}
