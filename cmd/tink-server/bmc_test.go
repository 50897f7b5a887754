package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// setCalls keeps what the BMC was told to change, dropping reads.
func setCalls(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "set ") {
			out = append(out, c)
		}
	}
	return out
}

// TestServerDrivesIPMI is the BMC path end to end against a real IPMI BMC
// (ipmi_sim, reached by bmclib's ipmitool provider): a netboot workflow is
// prepared (power off, PXE once, power on) before its first action, runs
// to SUCCESS with a real worker, and takes allowPXE back; the API and the
// CLI power the machine; a wrong password fails clearly; and the password
// appears in no log line, event, API response or error.
func TestServerDrivesIPMI(t *testing.T) {
	ctx := context.Background()
	wf := `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: e2e}
spec:
  templateRef: e2e
  hardwareRef: node-01
  hardwareMap: {device_1: "52:54:00:00:00:01"}
  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}
`
	f := newIPMIFixture(t, wf)
	sim, secrets, repo, out := f.sim, f.secrets, f.repo, f.out
	logs := &apitest.Buffer{}
	m := NewMain(io.Discard, logs)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--repo", repo,
		"--secrets-dir", secrets, "--bmc-timeout", "5s", "--bmc-retries", "1", "--log-level", "debug", "--log-format", "json"}))
	require.NoError(t, m.Open(ctx))
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	waitReady(t, m)
	startWorker(t, buildWorker(t), m.Addr(), "52:54:00:00:00:01")

	run := waitRun(t, m.Store, "e2e", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, run.State, run.Reason)
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, setCalls(sim.Calls()), "netboot: off, PXE once, on, in that order")
	require.False(t, *run.AllowPXE)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "1 /dev/sda\n2 /dev/sda\n3 /dev/sda\n4 /dev/sda\n", string(b), "the actions ran after the boot actions")

	// The events tell the story: the boot actions, then the run.
	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "e2e", Types: []state.EventType{state.EventBMC}}})
	require.NoError(t, err)
	require.Len(t, evs, 3, "one event of the run per boot action")
	require.Regexp(t, `^Workflow/e2e#1: power off: ok via ipmitool in `, evs[0].Message)

	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	obj, err := c.Get(ctx, client.Hardware, "", "node-01")
	require.NoError(t, err)
	require.NotNil(t, obj.Status.AllowPXE)
	require.False(t, *obj.Status.AllowPXE, "/v1/hardware shows PXE taken back after SUCCESS")

	// An operator power-cycles the machine through the API...
	sim.ResetCalls()
	res, err := c.Power(ctx, "", "node-01", "cycle")
	require.NoError(t, err)
	require.Equal(t, "ipmitool", res.Provider)
	require.Equal(t, "power cycle", res.Action)
	require.Eventually(t, func() bool {
		return strings.Join(setCalls(sim.Calls()), ",") == "set power 0,set power 1"
	}, 10*time.Second, 50*time.Millisecond, "%v", sim.Calls())
	// ... and reads it and sets PXE through the CLI.
	tink := buildTink(t)
	cli := exec.Command(tink, "--server", "http://"+m.Addr(), "hardware", "power", "node-01", "status")
	outb, err := cli.CombinedOutput()
	require.NoError(t, err, "%s", outb)
	require.Regexp(t, `^hardware/node-01: power status done via ipmitool in \d+\.\d\ds; power on\n$`, string(outb))
	outb, err = exec.Command(tink, "--server", "http://"+m.Addr(), "hardware", "bootdev", "node-01", "pxe").CombinedOutput()
	require.NoError(t, err, "%s", outb)
	require.Equal(t, "set boot pxe", setCalls(sim.Calls())[len(setCalls(sim.Calls()))-1])
	obj, err = c.Get(ctx, client.Hardware, "", "node-01")
	require.NoError(t, err)
	require.Equal(t, "on", obj.Status.Power.State, "the last power state read is in status")

	// A rotated, wrong password: unavailable, with the BMC's words, after
	// the retries; picked up without a restart.
	wrong := bmctest.RandomPassword()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, sim.User, wrong, "127.0.0.1")
	_, err = c.Power(ctx, "", "node-01", "on")
	require.Error(t, err)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, state.EUNAVAILABLE, apiErr.Code)
	require.Contains(t, apiErr.Message, "hardware node-01")
	require.Contains(t, apiErr.Message, "2 attempts")
	require.NotContains(t, apiErr.Message, wrong)

	// A run whose boot actions meet the wrong password fails with the
	// BMC's words after the retries; PXE stays allowed for a retry.
	require.NoError(t, os.WriteFile(filepath.Join(repo, "workflows/e2e.yaml"), []byte(wf+"  run: 2\n"), 0o644))
	var run2 *state.WorkflowRun
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(ctx, state.RunKey{Workflow: "e2e", Number: 2})
		run2 = r
		return err == nil && r.State.Terminal()
	}, 60*time.Second, 50*time.Millisecond, "run 2: %+v", run2)
	require.Equal(t, state.RunFailed, run2.State)
	require.Contains(t, run2.Reason, "boot actions failed: hardware node-01: power off failed after 2 attempts: ")
	require.Contains(t, run2.Reason, "Unable to establish IPMI v2 / RMCP+ session")
	require.NotContains(t, run2.Reason, wrong)
	require.True(t, *run2.AllowPXE)

	// A missing secret: a clear error naming it, on the hardware's status.
	require.NoError(t, os.RemoveAll(filepath.Join(secrets, "bmc-node-01")))
	_, err = c.Power(ctx, "", "node-01", "status")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, state.EINVALID, apiErr.Code)
	require.Contains(t, apiErr.Message, `secret "bmc-node-01" not found in secrets directory`)
	obj, err = c.Get(ctx, client.Hardware, "", "node-01")
	require.NoError(t, err)
	require.Contains(t, obj.Status.Power.Error, `secret "bmc-node-01" not found`)

	// No password anywhere.
	all, err := m.Store.Events(ctx, state.EventQuery{Limit: 10000})
	require.NoError(t, err)
	var bodies strings.Builder
	for _, e := range all {
		bodies.WriteString(e.Message + "\n")
	}
	for _, path := range []string{"/v1/hardware", "/v1/hardware/node-01", "/v1/events", "/v1/status", "/v1/workflows/e2e"} {
		resp, err := http.Get("http://" + m.Addr() + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies.Write(b)
	}
	for _, pw := range []string{sim.Password, wrong} {
		require.NotContains(t, bodies.String(), pw, "a password in an event or API response")
		require.NotContains(t, logs.String(), pw, "a password in the log")
	}
	require.Contains(t, logs.String(), `"hardware":"node-01"`, "the log was captured")
	// Lines about the run's boot actions carry workflow, run, hardware and
	// action, as every line about a workflow does.
	require.Regexp(t, `"msg":"bmc power off","workflow":"e2e","run":1,"action":"bmc power off","hardware":"node-01"`, logs.String())
}

// ipmiFixture is one machine (node-01) behind a real IPMI BMC, its secret
// in a secrets directory, and a directory repository declaring it with the
// e2e template and a workflow.
type ipmiFixture struct {
	sim                *bmctest.IPMISim
	secrets, repo, out string
}

func newIPMIFixture(t *testing.T, workflow string) *ipmiFixture {
	t.Helper()
	f := &ipmiFixture{sim: bmctest.StartIPMI(t, bmctest.WithPower(true)), secrets: t.TempDir(), repo: t.TempDir(), out: filepath.Join(t.TempDir(), "out.txt")}
	bmctest.WriteSecret(t, f.secrets, schema.SecretRef{Name: "bmc-node-01"}, f.sim.User, f.sim.Password, "127.0.0.1")
	hw := e2eHardware + fmt.Sprintf("  bmc: {address: %s, port: %d, protocol: ipmi, credentialsRef: bmc-node-01}\n", f.sim.Host, f.sim.Port)
	writeFiles(t, f.repo, map[string]string{"hardware/node-01.yaml": hw, "templates/e2e.yaml": e2eTemplate(f.out), "workflows/e2e.yaml": workflow})
	return f
}

// writeFiles writes a repository's files under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

// buildTink builds the real tink CLI.
func buildTink(t *testing.T) string { return buildBinary(t, "tink", "../tink") }

// TestServerPollsPower: with --bmc-poll-interval the server reads every
// BMC's power state on its own: hardware status shows it, and a change
// (the machine switched off by hand) is an event of the hardware.
func TestServerPollsPower(t *testing.T) {
	ctx := context.Background()
	f := newIPMIFixture(t, e2eWorkflow)
	require.NoError(t, os.Remove(filepath.Join(f.repo, "workflows/e2e.yaml")))
	m := MustRunMain(t, f.repo, "--secrets-dir", f.secrets, "--bmc-poll-interval", "200ms", "--bmc-timeout", "5s")
	waitReady(t, m)
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	powerIs := func(want string) func() bool {
		return func() bool {
			obj, err := c.Get(ctx, client.Hardware, "", "node-01")
			return err == nil && obj.Status.Power != nil && obj.Status.Power.State == want
		}
	}
	require.Eventually(t, powerIs("on"), 20*time.Second, 50*time.Millisecond, "the poll reads the power state")
	f.sim.SetPower(false)
	require.Eventually(t, powerIs("off"), 20*time.Second, 50*time.Millisecond, "the poll sees the change")
	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindHardware, Name: "node-01", Types: []state.EventType{state.EventBMC}}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "polls that change nothing write nothing")
	require.Equal(t, "power state changed: on -> off", evs[0].Message)
	require.Equal(t, []string(nil), setCalls(f.sim.Calls()), "a poll only reads")
}

// TestServerDrivesRedfishISO: an iso workflow on a Redfish BMC (verified
// TLS with --bmc-ca-cert): tink-server inserts the ISO, sets CD-ROM once
// and power-cycles before the first action, the worker runs the run to
// SUCCESS, and the server ejects the ISO once the run has ended; the run's
// events tell all of it.
func TestServerDrivesRedfishISO(t *testing.T) {
	ctx := context.Background()
	rf := bmctest.StartRedfish(t, bmctest.WithPower(false))
	secrets := t.TempDir()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, rf.User, rf.Password, "127.0.0.1")
	repo := t.TempDir()
	out := filepath.Join(t.TempDir(), "out.txt")
	hw := e2eHardware + fmt.Sprintf("  bmc: {address: %s, port: %d, protocol: redfish, credentialsRef: bmc-node-01}\n", rf.Host, rf.Port)
	wf := strings.TrimSuffix(e2eWorkflow, "}\n") + ", bootOptions: {bootMode: iso, isoURL: \"http://10.0.0.2/hook.iso\"}}\n"
	writeFiles(t, repo, map[string]string{"hardware/node-01.yaml": hw, "templates/e2e.yaml": e2eTemplate(out), "workflows/e2e.yaml": wf})
	m := MustRunMain(t, repo, "--secrets-dir", secrets, "--bmc-ca-cert", rf.CAFile(t), "--bmc-timeout", "5s")
	waitReady(t, m)
	startWorker(t, buildWorker(t), m.Addr(), "52:54:00:00:00:01")

	run := waitRun(t, m.Store, "e2e", 60*time.Second, terminal)
	require.Equal(t, state.RunSuccess, run.State, run.Reason)
	require.Eventually(t, func() bool {
		_, inserted := rf.Media()
		return !inserted
	}, 20*time.Second, 50*time.Millisecond, "the ISO is ejected after the run")
	require.Equal(t, "On", rf.Power())

	// The BMC has ejected the ISO a moment before the server closes its
	// session and records the step.
	var evs []state.Event
	require.Eventually(t, func() bool {
		var err error
		evs, err = m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: "e2e", Types: []state.EventType{state.EventBMC}}})
		return err == nil && len(evs) >= 4
	}, 10*time.Second, 20*time.Millisecond, "the eject is an event")
	var steps []string
	for _, e := range evs {
		steps = append(steps, e.Message[:strings.Index(e.Message, ": ok via gofish")])
	}
	require.Equal(t, []string{
		"Workflow/e2e#1: insert virtual media CD http://10.0.0.2/hook.iso",
		"Workflow/e2e#1: boot device cdrom once",
		"Workflow/e2e#1: power cycle",
		"Workflow/e2e#1: eject virtual media CD",
	}, steps)
	for _, e := range evs {
		require.NotContains(t, e.Message, rf.Password)
	}
}

// TestServerResolvesBMCRef: hardware whose bmcRef names a Rufio Machine
// (Tinkerbell's way) reaches the BMC the Machine declares, with the
// credentials its authSecretRef names in the secrets directory.
func TestServerResolvesBMCRef(t *testing.T) {
	ctx := context.Background()
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	secrets := t.TempDir()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Namespace: "tink-system", Name: "bmc-creds-node-01"}, sim.User, sim.Password, "127.0.0.1")
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01, namespace: tink-system}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:01"}}]
  bmcRef: {apiGroup: bmc.tinkerbell.org, kind: Machine, name: bmc-node-01}
`,
		"bmc/bmc-node-01.yaml": fmt.Sprintf(`apiVersion: bmc.tinkerbell.org/v1alpha1
kind: Machine
metadata: {name: bmc-node-01, namespace: tink-system}
spec:
  connection:
    host: %s
    insecureTLS: false
    authSecretRef: {name: bmc-creds-node-01, namespace: tink-system}
    providerOptions:
      ipmitool: {port: %d, cipherSuite: "3"}
`, sim.Host, sim.Port),
	})
	m := MustRunMain(t, repo, "--secrets-dir", secrets, "--bmc-timeout", "5s")
	waitReady(t, m)
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	res, err := c.Power(ctx, "tink-system", "node-01", "off")
	require.NoError(t, err)
	require.Equal(t, "ipmitool", res.Provider)
	require.Equal(t, []string{"set power 0"}, setCalls(sim.Calls()))
	require.Equal(t, "off", sim.Power())
}
