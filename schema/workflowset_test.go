package schema

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

const setTemplate = `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata: {name: provision}
spec:
  data: |
    version: "0.1"
    name: provision
    global_timeout: 600
    tasks:
      - name: install
        worker: "{{.device_1}}"
        actions:
          - name: wipe
            image: wipe:v1
            timeout: 60
`

const setMachines = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-b, labels: {rack: r7, slot: "2"}}
spec:
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:02"}
    - dhcp: {mac: "52:54:00:00:01:02"}
---
apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-a, labels: {rack: r7, slot: "1"}}
spec:
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:01"}
    - dhcp: {mac: "52:54:00:00:01:01"}
---
apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-c, labels: {rack: r8}}
spec:
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:03"}
`

func loadSet(t *testing.T, set string) (*Set, error) {
	t.Helper()
	l := NewLoader()
	l.Selector = state.SetSelector
	return l.Load(context.Background(), fstest.MapFS{
		"templates/provision.yaml": {Data: []byte(setTemplate)},
		"hardware/nodes.yaml":      {Data: []byte(setMachines)},
		"sets/r7.yaml":             {Data: []byte(set)},
	})
}

// TestWorkflowSetExpands: a set owns one workflow per selected machine,
// in its own API group, with hardwareMap values rendered per machine.
func TestWorkflowSetExpands(t *testing.T) {
	set, err := loadSet(t, `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec:
  templateRef: provision
  hardwareSelector: rack=r7
  hardwareMap: {device_1: "{{ index .MACs 1 }}"}
  run: 3
  rollout: {maxInFlight: "50%", maxFailures: 1, order: slot}
`)
	require.NoError(t, err)
	require.Len(t, set.WorkflowSets, 1)
	require.Len(t, set.Workflows, 2)
	w := set.Workflows[0]
	require.Equal(t, "r7-node-a", w.Metadata.Name)
	require.Equal(t, "r7", w.Metadata.Labels[OwnerLabel])
	require.Equal(t, map[string]string{"device_1": "52:54:00:00:01:01"}, w.Spec.HardwareMap)
	require.Equal(t, int64(3), w.Spec.Run)
	require.Equal(t, "sets/r7.yaml", w.Origin().File)
	require.NotNil(t, w.Rendered, "the template is rendered for every machine of the set")
	inFlight, failures := set.WorkflowSets[0].Spec.Rollout.Limits(2)
	require.Equal(t, 1, inFlight)
	require.Equal(t, 1, failures)

	set, err = loadSet(t, `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec: {templateRef: provision, hardwareSelector: "rack in (r7,r8)"}
`)
	require.NoError(t, err)
	require.Len(t, set.Workflows, 3)
	require.Equal(t, map[string]string{"device_1": "52:54:00:00:00:03"}, set.Workflows[2].Spec.HardwareMap, "default: device_1 is the first MAC")
}

// TestWorkflowSetErrors: a broken set is an error at its file and line.
func TestWorkflowSetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, set, want string
	}{
		{"WrongGroup", `apiVersion: tinkerbell.org/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec: {templateRef: provision, hardwareSelector: rack=r7}
`, `sets/r7.yaml:1:13: apiVersion: apiVersion "tinkerbell.org/v1alpha1" is not served for kind WorkflowSet (want tinkops.dev/v1alpha1)`},
		{"UnknownTemplate", `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec: {templateRef: provison, hardwareSelector: rack=r7}
`, `sets/r7.yaml:4:21: spec.templateRef: template "provison" is not declared`},
		{"BadSelector", `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec: {templateRef: provision, hardwareSelector: "rack in r7"}
`, `sets/r7.yaml:4:50: spec.hardwareSelector: `},
		{"BadLimit", `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec:
  templateRef: provision
  hardwareSelector: rack=r7
  rollout: {maxInFlight: five}
`, `sets/r7.yaml:7:26: spec.rollout.maxInFlight: "five" is not a count or a percentage (5 or "10%")`},
		{"BadMapTemplate", `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec:
  templateRef: provision
  hardwareSelector: rack=r7
  hardwareMap: {device_1: "{{ .Nope }}"}
`, `sets/r7.yaml:7:27: spec.hardwareMap.device_1: for hardware node-a: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSet(t, tc.set)
			var list ErrorList
			require.ErrorAs(t, err, &list)
			require.Contains(t, list[0].Error(), tc.want, "%v", list)
			if tc.name != "BadMapTemplate" { // one error per machine there
				require.Len(t, list, 1, "%v", list)
			}
		})
	}
}

// TestWorkflowSetIdentity: an owned workflow keeps its Identity while its
// set and its machine do not change, so its rendering is reused; a change
// to the machine gives it a new one.
func TestWorkflowSetIdentity(t *testing.T) {
	set := `apiVersion: tinkops.dev/v1alpha1
kind: WorkflowSet
metadata: {name: r7}
spec: {templateRef: provision, hardwareSelector: rack=r7}
`
	fsys := fstest.MapFS{
		"templates/provision.yaml": {Data: []byte(setTemplate)},
		"hardware/nodes.yaml":      {Data: []byte(setMachines)},
		"sets/r7.yaml":             {Data: []byte(set)},
	}
	l := NewLoader()
	l.Selector = state.SetSelector
	ids := func() map[string]Identity {
		s, err := l.Load(context.Background(), hashMapFS{fsys})
		require.NoError(t, err)
		out := map[string]Identity{}
		for _, w := range s.Workflows {
			require.False(t, IdentityOf(w).IsZero())
			out[w.Metadata.Name] = IdentityOf(w)
		}
		return out
	}
	first := ids()
	require.Len(t, first, 2)
	require.Equal(t, first, ids(), "nothing changed: the same workflows")
	fsys["hardware/nodes.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(setMachines, `slot: "2"`, `slot: "3"`, 1))}
	third := ids()
	require.NotEqual(t, first["r7-node-a"], third["r7-node-a"], "the machines' file changed")
	require.NotEqual(t, first["r7-node-b"], third["r7-node-b"])
}
