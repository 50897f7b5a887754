package tinkgrpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tinkops/tinkops/api/tinkgrpc"
	"github.com/tinkops/tinkops/api/tinkgrpc/tinkpb"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

const mac = "52:54:00:00:00:01"

// hardware declares the loopback address the tests call from, unless ip
// says otherwise.
func hardware(name, mac, ip, agentID string, allowWorkflow bool) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: %s}
spec:
  agentID: %q
  disks: [{device: /dev/sda}]
  interfaces: [{dhcp: {mac: %q, ip: {address: %s}}, netboot: {allowPXE: true, allowWorkflow: %t}}]
`, name, agentID, mac, ip, allowWorkflow)
}

const tmpl = `version: "0.1"
name: provision
global_timeout: 600
tasks:
  - name: disk
    worker: "{{.device_1}}"
    volumes: [/dev:/dev, "/var/log:/log:ro"]
    environment: {DISK: "{{ index .Hardware.Disks 0 }}"}
    actions:
      - name: wipe
        image: wipe:v1
        timeout: 60
        pid: host
        command: [/bin/sh, -c, "echo wipe"]
        environment: {MODE: 0644, EQ: "a=b"}
      - name: write
        image: write:v1
        timeout: 30
`

func workflowDoc(name, hw, mac string) string {
	return fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\nspec: {templateRef: provision, hardwareRef: %s, hardwareMap: {device_1: %q}}\n", name, hw, mac)
}

type fixture struct {
	st     *badger.Store
	e      *workflow.Engine
	client tinkpb.WorkflowServiceClient
}

// setup syncs node-01 (from 127.0.0.1, MAC mac, agentID agent-1) with
// workflow wf-1, plus node-02 (declaring another address) and node-03
// (not allowing workflows), into a real store, and serves the service on
// loopback over the real engine.
func setup(t *testing.T, cfg tinkgrpc.Config) *fixture {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with more files in the repository.
func setupWith(t *testing.T, cfg tinkgrpc.Config, extra fstest.MapFS) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	fsys := fstest.MapFS{
		"hardware/node-01.yaml": {Data: []byte(hardware("node-01", mac, "127.0.0.1", "agent-1", true))},
		"hardware/node-02.yaml": {Data: []byte(hardware("node-02", "52:54:00:00:00:02", "10.9.9.2", "", true))},
		"hardware/node-03.yaml": {Data: []byte(hardware("node-03", "52:54:00:00:00:03", "10.9.9.3", "", false))},
		"templates/t.yaml":      {Data: []byte(tmpl)},
		"workflows/wf-1.yaml":   {Data: []byte(workflowDoc("wf-1", "node-01", mac))},
		"workflows/wf-02.yaml":  {Data: []byte(workflowDoc("wf-02", "node-02", "52:54:00:00:00:02"))},
		"workflows/wf-03.yaml":  {Data: []byte(workflowDoc("wf-03", "node-03", "52:54:00:00:00:03"))},
	}
	for name, f := range extra {
		fsys[name] = f
	}
	out, err := reconciler.New(reconciler.Config{Store: st}).Sync(ctx, reconciler.Snapshot{Revision: "r1", FS: fsys})
	require.NoError(t, err)
	require.True(t, out.Applied, "%v", out.Errors)
	e := workflow.New(workflow.Config{Store: st})
	e.Step(ctx)
	cfg.Engine, cfg.Store = e, st
	g := grpc.NewServer()
	tinkgrpc.New(cfg).Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &fixture{st: st, e: e, client: tinkpb.NewWorkflowServiceClient(conn)}
}

func (f *fixture) get(t *testing.T, id string) *tinkpb.ActionResponse {
	t.Helper()
	a, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: id})
	require.NoError(t, err)
	return a
}

// report sends what the agent sends: the ids it was given, echoed.
func (f *fixture) report(a *tinkpb.ActionResponse, s tinkpb.StateType, msg string) error {
	_, err := f.client.ReportActionStatus(context.Background(), &tinkpb.ActionStatusRequest{
		WorkflowId: a.WorkflowId, AgentId: a.AgentId, TaskId: a.TaskId, ActionId: a.ActionId, ActionName: a.Name, ActionState: s,
		ExecutionStart: timestamppb.New(time.Time{}), ExecutionStop: timestamppb.New(time.Time{}), Message: &tinkpb.ActionMessage{Message: msg}})
	return err
}

func (f *fixture) run(t *testing.T, wf string) *state.WorkflowRun {
	t.Helper()
	r, err := f.st.GetRun(context.Background(), state.RunKey{Workflow: wf, Number: 1})
	require.NoError(t, err)
	return r
}

func (f *fixture) agentEvents(t *testing.T) []state.Event {
	t.Helper()
	evs, err := f.st.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventAgent}}})
	require.NoError(t, err)
	return evs
}

// requireAgentGoesOn fails for the codes that make the agent exit after a
// final report.
func requireAgentGoesOn(t *testing.T, err error) {
	t.Helper()
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		t.Fatalf("a final report answered %s ends the agent for good: %v", status.Code(err), err)
	}
}

// TestGetActionTwiceBeforeReport: the current action comes back unchanged
// until a report moves the run on; agent_id is filled, the environment is
// K=V as rendered, volumes and pid as the template says, timeout never 0.
func TestGetActionTwiceBeforeReport(t *testing.T) {
	f := setup(t, tinkgrpc.Config{Enabled: true})
	a := f.get(t, mac)
	require.Equal(t, mac, a.AgentId, "the agent echoes agent_id in its reports")
	require.Equal(t, "wf-1", a.WorkflowId)
	require.Equal(t, "disk", a.TaskId)
	require.Equal(t, "wf-1/1.0.1", a.ActionId, "workflow, run, action and attempt: unique on the machine, as the agent's container name")
	require.Equal(t, "wipe", a.Name)
	require.Equal(t, "wipe:v1", a.Image)
	require.Equal(t, int64(60), a.Timeout)
	require.Equal(t, []string{"/bin/sh", "-c", "echo wipe"}, a.Command)
	require.Equal(t, []string{"DISK=/dev/sda", "EQ=a=b", "MODE=0644"}, a.Environment)
	require.Equal(t, []string{"/dev:/dev", "/var/log:/log:ro"}, a.Volumes)
	require.Equal(t, "host", a.Namespaces.GetPid())
	require.Equal(t, "host", a.GetPid()) //nolint:staticcheck // the deprecated field older agents read

	again := f.get(t, mac)
	require.True(t, proto.Equal(a, again), "GetAction is idempotent:\n%v\n%v", a, again)
	require.NoError(t, f.report(a, tinkpb.StateType_STATE_RUNNING, "running action"))
	again = f.get(t, mac)
	require.True(t, proto.Equal(a, again), "still the same action while it runs")
	require.Equal(t, 1, f.run(t, "wf-1").Actions[0].Attempt, "handed out once")

	require.NoError(t, f.report(a, tinkpb.StateType_STATE_SUCCESS, "action completed"))
	b := f.get(t, mac)
	require.Equal(t, "write", b.Name)
	require.Equal(t, int64(30), b.Timeout)
	require.NoError(t, f.report(b, tinkpb.StateType_STATE_SUCCESS, ""))
	require.Equal(t, state.RunSuccess, f.run(t, "wf-1").State)

	_, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: mac})
	require.Equal(t, codes.NotFound, status.Code(err), "nothing to do")
	require.Contains(t, status.Convert(err).Message(), "no action for hardware node-01")
}

// TestRepeatedFinalReport: a final report sent again (the agent retries
// after a lost answer) is acknowledged and changes nothing, also once the
// run has ended.
func TestRepeatedFinalReport(t *testing.T) {
	f := setup(t, tinkgrpc.Config{Enabled: true})
	a := f.get(t, mac)
	require.NoError(t, f.report(a, tinkpb.StateType_STATE_RUNNING, ""))
	require.NoError(t, f.report(a, tinkpb.StateType_STATE_SUCCESS, "done"))
	before := f.run(t, "wf-1")
	err := f.report(a, tinkpb.StateType_STATE_SUCCESS, "done")
	requireAgentGoesOn(t, err)
	require.NoError(t, err)
	require.Equal(t, before, f.run(t, "wf-1"), "changes nothing")

	b := f.get(t, mac)
	require.NoError(t, f.report(b, tinkpb.StateType_STATE_FAILED, "disk busy"))
	require.Equal(t, state.RunFailed, f.run(t, "wf-1").State)
	for range 2 {
		err := f.report(b, tinkpb.StateType_STATE_FAILED, "disk busy")
		requireAgentGoesOn(t, err)
		require.NoError(t, err)
	}
	require.Equal(t, state.RunFailed, f.run(t, "wf-1").State)
}

// TestReportForEndedRun: a final report on a run that ended meanwhile
// (cancelled here; a server-side timeout is the same) is acknowledged,
// changes nothing, and an event says so.
func TestReportForEndedRun(t *testing.T) {
	ctx := context.Background()
	f := setup(t, tinkgrpc.Config{Enabled: true})
	a := f.get(t, mac)
	require.NoError(t, f.report(a, tinkpb.StateType_STATE_RUNNING, ""))
	_, err := f.e.Cancel(ctx, state.APIUser("ops"), state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-1"})
	require.NoError(t, err)
	before := f.run(t, "wf-1")
	require.Equal(t, state.RunCancelled, before.State)

	for _, s := range []tinkpb.StateType{tinkpb.StateType_STATE_SUCCESS, tinkpb.StateType_STATE_TIMEOUT, tinkpb.StateType_STATE_RUNNING} {
		err = f.report(a, s, "late")
		requireAgentGoesOn(t, err)
		require.NoError(t, err, s.String())
	}
	require.Equal(t, before, f.run(t, "wf-1"), "changes nothing")
	evs := f.agentEvents(t)
	require.Len(t, evs, 3)
	require.Equal(t, "wf-1", evs[0].Name)
	require.Equal(t, state.KindWorkflow, evs[0].Kind)
	require.Equal(t, "wipe", evs[0].Action)
	require.Contains(t, evs[0].Message, `stale SUCCESS report from agent "52:54:00:00:00:01" on action wipe acknowledged; it changes nothing`)
	require.Contains(t, evs[0].Message, "CANCELLED")

	_, err = f.client.GetAction(ctx, &tinkpb.ActionRequest{AgentId: mac})
	require.Equal(t, codes.NotFound, status.Code(err))
}

// TestUnknownAgent: an agent that names no hardware is told NotFound on
// GetAction (it keeps asking, so it is served once enrolled) and
// PermissionDenied on a report (never a code that ends it); the refusal is
// an event, once a minute rather than on every poll.
func TestUnknownAgent(t *testing.T) {
	f := setup(t, tinkgrpc.Config{Enabled: true})
	for range 3 {
		_, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: "52:54:00:99:99:99"})
		require.Equal(t, codes.NotFound, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), `no hardware has agentID or MAC "52:54:00:99:99:99"`)
	}
	evs := f.agentEvents(t)
	require.Len(t, evs, 1, "one event per minute and reason")
	require.Contains(t, evs[0].Message, `GetAction from agent "52:54:00:99:99:99" at 127.0.0.1 refused: no hardware has agentID or MAC`)

	err := f.report(&tinkpb.ActionResponse{WorkflowId: "wf-1", AgentId: "52:54:00:99:99:99", ActionId: "1.0.1", Name: "wipe"}, tinkpb.StateType_STATE_SUCCESS, "")
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, state.RunRunning, f.run(t, "wf-1").State)
	require.Len(t, f.agentEvents(t), 2)

	_, err = f.client.GetAction(context.Background(), &tinkpb.ActionRequest{})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "agent_id is empty")
}

// TestRefusals: off unless enabled; hardware that does not allow
// workflows and calls from an address the hardware does not declare are
// refused with a status saying why and an event on the hardware; the
// agentID names the hardware as its MAC does.
func TestRefusals(t *testing.T) {
	t.Run("Disabled", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{})
		_, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: mac})
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "--tinkerbell-agents")
		_, err = f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: "52:54:00:00:00:02"})
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.Len(t, f.agentEvents(t), 1, "one event a minute for the whole fleet")
		require.Equal(t, state.RunRunning, f.run(t, "wf-1").State)
		require.Equal(t, state.RunPending, f.run(t, "wf-1").Actions[0].State, "nothing handed out")
	})
	t.Run("NoAllowWorkflow", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{Enabled: true, AnySource: true})
		_, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: "52:54:00:00:00:03"})
		require.Equal(t, codes.PermissionDenied, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "hardware node-03 does not allow workflows")
		evs := f.agentEvents(t)
		require.Len(t, evs, 1)
		require.Equal(t, "node-03", evs[0].Name)
		require.Equal(t, state.KindHardware, evs[0].Kind)
		require.Equal(t, state.RunPending, f.run(t, "wf-03").Actions[0].State)
	})
	t.Run("Source", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{Enabled: true})
		_, err := f.client.GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: "52:54:00:00:00:02"})
		require.Equal(t, codes.PermissionDenied, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "calls from 127.0.0.1, which hardware node-02 does not declare")
		require.Len(t, f.agentEvents(t), 1)
		require.Equal(t, state.RunPending, f.run(t, "wf-02").Actions[0].State)
	})
	t.Run("AnySource", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{Enabled: true, AnySource: true})
		a := f.get(t, "52:54:00:00:00:02")
		require.Equal(t, "wf-02", a.WorkflowId)
	})
	t.Run("AgentID", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{Enabled: true})
		a := f.get(t, "agent-1")
		require.Equal(t, "agent-1", a.AgentId)
		require.Equal(t, "wf-1", a.WorkflowId)
		require.NoError(t, f.report(a, tinkpb.StateType_STATE_SUCCESS, ""))
		require.Equal(t, state.RunSuccess, f.run(t, "wf-1").Actions[0].State)
	})
	t.Run("ForeignIDs", func(t *testing.T) {
		f := setup(t, tinkgrpc.Config{Enabled: true})
		err := f.report(&tinkpb.ActionResponse{WorkflowId: "wf-1", AgentId: mac, ActionId: "not-ours", Name: "wipe"}, tinkpb.StateType_STATE_RUNNING, "")
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.True(t, strings.Contains(status.Convert(err).Message(), "not ids this server handed out"))
	})
}

// TestAgentAttributesKept: what the agent discovered is kept on its
// hardware's status, written only when it changes (the agent sends it
// with every GetAction).
func TestAgentAttributesKept(t *testing.T) {
	ctx := context.Background()
	f := setup(t, tinkgrpc.Config{Enabled: true})
	attrs := &tinkpb.AgentAttributes{
		Cpu:     &tinkpb.CPU{TotalCores: 8, TotalThreads: 16, Processors: []*tinkpb.Processor{{Vendor: "GenuineIntel", Model: "Xeon"}}},
		Memory:  &tinkpb.Memory{Total: "64GB"},
		Block:   []*tinkpb.Block{{Name: "sda", Size: "480GB", DriveType: "SSD"}},
		Network: []*tinkpb.Network{{Name: "eth0", Mac: mac, Speed: "10Gbps"}},
	}
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-01"}
	version := func() uint64 {
		o, err := f.st.GetObject(ctx, key)
		require.NoError(t, err)
		return o.ResourceVersion
	}
	before := version()
	_, err := f.client.GetAction(ctx, &tinkpb.ActionRequest{AgentId: mac, AgentAttributes: attrs})
	require.NoError(t, err)
	o, err := f.st.GetObject(ctx, key)
	require.NoError(t, err)
	require.Greater(t, o.ResourceVersion, before)
	var st map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(o.Status, &st))
	var kept tinkgrpc.AgentStatus
	require.NoError(t, json.Unmarshal(st[tinkgrpc.StatusKey], &kept))
	require.Equal(t, mac, kept.ID)
	require.JSONEq(t, `{"cpu":{"totalCores":8,"totalThreads":16,"processors":[{"vendor":"GenuineIntel","model":"Xeon"}]},
		"memory":{"total":"64GB"},"block":[{"name":"sda","driveType":"SSD","size":"480GB"}],
		"network":[{"name":"eth0","mac":"52:54:00:00:00:01","speed":"10Gbps"}]}`, string(kept.Attributes))

	written := o.ResourceVersion
	for range 3 {
		_, err = f.client.GetAction(ctx, &tinkpb.ActionRequest{AgentId: mac, AgentAttributes: attrs})
		require.NoError(t, err)
	}
	require.Equal(t, written, version(), "unchanged attributes are not written again")

	attrs.Memory.Total = "128GB"
	_, err = f.client.GetAction(ctx, &tinkpb.ActionRequest{AgentId: mac, AgentAttributes: attrs})
	require.NoError(t, err)
	require.Greater(t, version(), written, "changed attributes are")
}

// TestNamespacedHardware: a machine outside the default namespace is
// served its own namespace's workflow, even beside a namesake in the
// default namespace, and its reports reach that run.
func TestNamespacedHardware(t *testing.T) {
	const nsMAC = "52:54:00:00:00:04"
	var tmplObj strings.Builder
	tmplObj.WriteString("apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: provision, namespace: site-a}\nspec:\n  data: |\n")
	for _, line := range strings.Split(strings.TrimSpace(tmpl), "\n") {
		tmplObj.WriteString("    " + line + "\n")
	}
	f := setupWith(t, tinkgrpc.Config{Enabled: true, AnySource: true}, fstest.MapFS{
		"site-a/hardware.yaml": {Data: []byte(strings.Replace(hardware("node-01", nsMAC, "10.9.9.4", "", true), "metadata: {name: node-01}", "metadata: {name: node-01, namespace: site-a}", 1))},
		"site-a/template.yaml": {Data: []byte(tmplObj.String())},
		"site-a/workflow.yaml": {Data: []byte(strings.Replace(workflowDoc("wf-a", "node-01", nsMAC), "metadata: {name: wf-a}", "metadata: {name: wf-a, namespace: site-a}", 1))},
	})
	a := f.get(t, nsMAC)
	require.Equal(t, "site-a/wf-a", a.WorkflowId)
	require.Equal(t, "site-a/wf-a/1.0.1", a.ActionId)
	require.NoError(t, f.report(a, tinkpb.StateType_STATE_SUCCESS, "done"))
	r, err := f.st.GetRun(context.Background(), state.RunKey{Namespace: "site-a", Workflow: "wf-a", Number: 1})
	require.NoError(t, err)
	require.Equal(t, state.RunSuccess, r.Actions[0].State)
	require.Equal(t, state.RunPending, f.run(t, "wf-1").Actions[0].State, "the default namespace's namesake is untouched")
}
