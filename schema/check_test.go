package schema_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

const twoMachinesHardware = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-09}
spec:
  disks: [{device: /dev/sda}]
  interfaces: [{dhcp: {mac: "52:54:00:00:00:09", ip: {address: 10.0.0.9, netmask: 255.255.255.0}}}]
---
apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-10}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:10", ip: {address: 10.0.0.10, netmask: 255.255.255.0}}}]
`

const twoMachinesTemplate = `version: "0.1"
name: pair
global_timeout: 600
tasks:
  - name: server
    worker: "{{.device_1}}"
    actions: [{name: install, image: install:v1, timeout: 60}]
  - name: peer
    worker: "{{.device_2}}"
    actions: [{name: join, image: join:v1, timeout: 60}]
`

const twoMachinesWorkflow = `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: pair}
spec:
  templateRef: pair
  hardwareRef: node-09
  hardwareMap: {device_1: "52:54:00:00:00:09", device_2: "52:54:00:00:00:10"}
`

// TestTasksOnSeveralMachines: a Tinkerbell template whose tasks run on
// several machines (device_2 is another hardware's MAC) is valid, as in
// Tinkerbell; each task renders with its own worker.
func TestTasksOnSeveralMachines(t *testing.T) {
	set, err := schema.Load(fstest.MapFS{
		"hardware/nodes.yaml": {Data: []byte(twoMachinesHardware)},
		"templates/pair.yaml": {Data: []byte(twoMachinesTemplate)},
		"workflows/pair.yaml": {Data: []byte(twoMachinesWorkflow)},
	})
	require.NoError(t, err)
	doc := set.Workflows[0].Rendered
	require.Equal(t, "52:54:00:00:00:09", doc.Tasks[0].Worker)
	require.Equal(t, "52:54:00:00:00:10", doc.Tasks[1].Worker)

	// A MAC no declared hardware has is still an error.
	errs := loadErrors(t, schema.NewLoader(), fstest.MapFS{
		"hardware/nodes.yaml": {Data: []byte(twoMachinesHardware)},
		"templates/pair.yaml": {Data: []byte(twoMachinesTemplate)},
		"workflows/pair.yaml": {Data: []byte(twoMachinesWorkflow[:len(twoMachinesWorkflow)-len(`"52:54:00:00:00:10"}`)-1] + `"52:54:00:00:00:77"}` + "\n")},
	})
	require.Equal(t, []string{
		`templates/pair.yaml:9:13: spec.data: tasks[1].worker: worker "52:54:00:00:00:77" is not the MAC address of any declared hardware (rendered for workflow pair)`,
		`workflows/pair.yaml:7:58: spec.hardwareMap.device_2: 52:54:00:00:00:77 is not a MAC address of hardware node-09 (it has 52:54:00:00:00:09) nor of any other declared hardware`,
	}, errs)
}

// TestCheckIn: one object checked against a fleet gets exactly the
// set-wide errors Load gives it, and no error that belongs to others.
func TestCheckIn(t *testing.T) {
	ctx := context.Background()
	l := schema.NewLoader()
	fleet, err := l.Load(ctx, fstest.MapFS{
		"hardware/nodes.yaml": {Data: []byte(twoMachinesHardware)},
		"templates/pair.yaml": {Data: []byte(twoMachinesTemplate)},
		"workflows/pair.yaml": {Data: []byte(twoMachinesWorkflow)},
	})
	require.NoError(t, err)
	decode := func(doc string) schema.Object {
		objs, _, errs := l.DecodeFile("body", []byte(doc))
		require.Empty(t, errs)
		require.Len(t, objs, 1)
		return objs[0]
	}
	check := func(obj schema.Object) []string {
		var out []string
		for _, e := range l.CheckIn(ctx, fleet, obj) {
			out = append(out, e.Error())
		}
		return out
	}

	t.Run("ErrIPTwiceInOneHardware", func(t *testing.T) {
		hw := decode(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-11}
spec:
  interfaces:
    - {dhcp: {mac: "52:54:00:00:00:11", ip: {address: 10.0.0.11, netmask: 255.255.255.0}}}
    - {dhcp: {mac: "52:54:00:00:00:12", ip: {address: 10.0.0.11, netmask: 255.255.255.0}}}
`)
		require.Equal(t, []string{"body:7:55: spec.interfaces[1].dhcp.ip.address: IP address 10.0.0.11 appears twice in this hardware (interfaces[0] has it)"}, check(hw))
	})
	t.Run("ErrMACOfAnother", func(t *testing.T) {
		hw := decode(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-11}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:10"}}]
`)
		require.Equal(t, []string{"body:5:29: spec.interfaces[0].dhcp.mac: MAC 52:54:00:00:00:10 is already used by hardware node-10 (hardware/nodes.yaml:12:29)"}, check(hw))
	})
	t.Run("OKReplacesItself", func(t *testing.T) {
		hw := decode(twoMachinesHardware[len(twoMachinesHardware)-len(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-10}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:10", ip: {address: 10.0.0.10, netmask: 255.255.255.0}}}]
`):])
		require.Empty(t, check(hw), "node-10 pushed again clashes with no one")
	})
	t.Run("ErrWorkflowTemplateDoesNotRender", func(t *testing.T) {
		wf := decode(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: pair-2}
spec: {templateRef: pair, hardwareRef: node-09, hardwareMap: {device_1: "52:54:00:00:00:09"}}
`)
		errs := check(wf)
		require.Len(t, errs, 1)
		require.Contains(t, errs[0], `map has no entry for key "device_2"`)
	})
}
