package bmc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// ipmiFixture starts an IPMI simulator and a fixture whose secret
// "bmc-node-01" holds the simulator's credentials.
func ipmiFixture(t *testing.T, cfg bmc.Config, opts ...bmctest.Option) (*fixture, *bmctest.IPMISim, *schema.Hardware) {
	t.Helper()
	sim := bmctest.StartIPMI(t, opts...)
	f := newFixture(t, cfg)
	f.secret("bmc-node-01", sim.User, sim.Password)
	return f, sim, hardware("node-01", sim.BMC("bmc-node-01"), true)
}

// TestIPMINetbootPrepare shows the netboot boot actions reach a real IPMI
// BMC in order (power off, PXE once with EFI, power on), with one event
// per step naming the run, and that Finish does nothing for netboot.
func TestIPMINetbootPrepare(t *testing.T) {
	t.Parallel()
	f, sim, hw := ipmiFixture(t, bmc.Config{}, bmctest.WithPower(true))
	wf := workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeNetboot, ToggleAllowNetboot: true})

	err := f.ctrl.Prepare(context.Background(), run(), wf, hw)
	require.NoError(t, err)

	calls := sim.Calls()
	requireOrder(t, calls, "set power 0", "get boot", "set boot pxe", "set power 1")
	require.Equal(t, []string{"set power 0", "set boot pxe", "set power 1"}, sets(calls))
	require.Equal(t, "on", sim.Power())
	require.Equal(t, "pxe", sim.Boot())

	evs := f.events("node-01")
	require.Len(t, evs, 3, "one event per step: %q", messages(evs))
	require.Regexp(t, `^Workflow/wf-1#1: power off: ok via ipmitool in \d+(\.\d+)?m?s \(power off\)$`, evs[0].Message)
	require.Regexp(t, `^Workflow/wf-1#1: boot device pxe once \(EFI\): ok via ipmitool in `, evs[1].Message)
	require.Regexp(t, `^Workflow/wf-1#1: power on: ok via ipmitool in .* \(power on\)$`, evs[2].Message)
	for _, ev := range evs {
		require.Equal(t, state.ActorReconciler, ev.Actor)
		// Events of the run, so `tink workflow events wf-1` shows them.
		require.Equal(t, state.KindWorkflow, ev.Kind)
		require.Equal(t, "wf-1", ev.Name)
		require.Equal(t, 1, ev.Run)
	}
	require.Equal(t, bmc.PowerOn, f.ctrl.Status("", "node-01").Power)

	sim.ResetCalls()
	require.NoError(t, f.ctrl.Finish(context.Background(), run(), wf, hw))
	require.Empty(t, sim.Calls(), "netboot has nothing to undo")
	require.Len(t, f.events("node-01"), 3)
}

// TestIPMIPowerActions shows what each power override tells a real IPMI
// BMC, the normalised state it reports, and its one event.
func TestIPMIPowerActions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action    bmc.PowerAction
		on        bool     // power before
		sets      []string // chassis changes, in order
		power     bmc.Power
		simAfter  string
		eventTail string
	}{
		{action: bmc.PowerActionStatus, on: true, power: bmc.PowerOn, simAfter: "on", eventTail: "(power on)"},
		{action: bmc.PowerActionStatus, on: false, power: bmc.PowerOff, simAfter: "off", eventTail: "(power off)"},
		{action: bmc.PowerActionOn, on: false, sets: []string{"set power 1"}, power: bmc.PowerOn, simAfter: "on", eventTail: "(power on)"},
		{action: bmc.PowerActionOn, on: true, power: bmc.PowerOn, simAfter: "on", eventTail: "(power on)"},
		{action: bmc.PowerActionOff, on: true, sets: []string{"set power 0"}, power: bmc.PowerOff, simAfter: "off", eventTail: "(power off)"},
		// ipmi_sim turns power back on about a second after a cycle.
		{action: bmc.PowerActionCycle, on: true, sets: []string{"set power 0", "set power 1"}, power: bmc.PowerUnknown, simAfter: "on"},
		// Cycling a machine that is off powers it on.
		{action: bmc.PowerActionCycle, on: false, sets: []string{"set power 1"}, power: bmc.PowerOn, simAfter: "on", eventTail: "(power on)"},
		{action: bmc.PowerActionReset, on: true, sets: []string{"set reset 1"}, power: bmc.PowerUnknown, simAfter: "on"},
		{action: bmc.PowerActionSoft, on: true, sets: []string{"set shutdown 1"}, power: bmc.PowerUnknown, simAfter: "off"},
	} {
		name := string(tc.action) + map[bool]string{true: "-from-on", false: "-from-off"}[tc.on]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, sim, hw := ipmiFixture(t, bmc.Config{}, bmctest.WithPower(tc.on))
			res, err := f.ctrl.Power(context.Background(), hw, tc.action, state.APIUser("alice"))
			f.noLeak(err)
			require.NoError(t, err)
			require.Equal(t, tc.power, res.Power)
			require.Equal(t, "ipmitool", res.Provider)
			require.Equal(t, 1, res.Attempts)
			sim.WaitPower(t, tc.simAfter, 5*time.Second)
			if len(tc.sets) > 1 {
				// The cycle's second half arrives later.
				require.Eventually(t, func() bool { return len(sets(sim.Calls())) >= len(tc.sets) }, 5*time.Second, 20*time.Millisecond)
			}
			require.Equal(t, tc.sets, sets(sim.Calls()))

			evs := f.events("node-01")
			require.Len(t, evs, 1)
			require.Contains(t, evs[0].Message, "power "+string(tc.action)+": ok via ipmitool in ")
			if tc.eventTail != "" {
				require.Contains(t, evs[0].Message, tc.eventTail)
			} else {
				require.NotContains(t, evs[0].Message, "(power")
			}
			require.Equal(t, state.APIUser("alice"), evs[0].Actor)
			st := f.ctrl.Status("", "node-01")
			require.Equal(t, tc.power, st.Power)
			require.Empty(t, st.Error)
			require.False(t, st.Checked.IsZero())
		})
	}
}

// TestIPMIBootDevice shows one-time PXE and persistent disk reach the BMC
// (ipmitool reads the boot flags first; disk arrives as "default").
func TestIPMIBootDevice(t *testing.T) {
	t.Parallel()
	f, sim, hw := ipmiFixture(t, bmc.Config{})
	ctx := context.Background()

	res, err := f.ctrl.BootDevice(ctx, hw, bmc.BootPXE, false, state.APIUser("bob"))
	require.NoError(t, err)
	require.Equal(t, "ipmitool", res.Provider)
	requireOrder(t, sim.Calls(), "get boot", "set boot pxe")
	require.Equal(t, "pxe", sim.Boot())

	sim.ResetCalls()
	_, err = f.ctrl.BootDevice(ctx, hw, bmc.BootDisk, true, state.APIUser("bob"))
	require.NoError(t, err)
	require.Equal(t, []string{"set boot default"}, sets(sim.Calls()))

	require.Equal(t, []string{
		"boot device pxe once (EFI): ok via ipmitool in ",
		"boot device disk persistent (EFI): ok via ipmitool in ",
	}, prefixes(messages(f.events("node-01")), " in "))
	require.Equal(t, "off", sim.Power(), "setting the boot device does not touch power")

	_, err = f.ctrl.BootDevice(ctx, hw, "floppy", false, state.APIUser("bob"))
	require.ErrorContains(t, err, `unknown boot device "floppy": want one of pxe, disk, cdrom, bios`)
	require.Equal(t, state.EINVALID, state.ErrorCode(err))
}

// prefixes cuts every message after the first sep (keeping sep), so
// durations do not have to be matched.
func prefixes(msgs []string, sep string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if j := strings.Index(m, sep); j >= 0 {
			m = m[:j+len(sep)]
		}
		out[i] = m
	}
	return out
}

// TestIPMIWrongPassword shows a wrong password fails after the configured
// retries with the BMC's own message, one event, a status error, and a
// Prepare error the engine can fail the run with.
func TestIPMIWrongPassword(t *testing.T) {
	t.Parallel()
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	f := newFixture(t, bmc.Config{Retries: 2})
	f.remember(sim.Password)
	f.secret("bmc-node-01", sim.User, bmctest.RandomPassword())
	hw := hardware("node-01", sim.BMC("bmc-node-01"), false)

	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionOff, state.APIUser("alice"))
	f.noLeak(err)
	require.Error(t, err)
	require.Equal(t, 3, res.Attempts)
	require.Equal(t, state.EINTERNAL, state.ErrorCode(err))
	require.ErrorContains(t, err, "hardware node-01: power off failed after 3 attempts: ")
	require.ErrorContains(t, err, "Unable to establish IPMI v2 / RMCP+ session")
	require.Equal(t, "on", sim.Power())
	require.Empty(t, sets(sim.Calls()))

	evs := f.events("node-01")
	require.Len(t, evs, 1)
	require.Regexp(t, `^power off failed after 3 attempts: .*Unable to establish IPMI v2 / RMCP\+ session`, evs[0].Message)
	st := f.ctrl.Status("", "node-01")
	require.Contains(t, st.Error, "Unable to establish IPMI v2 / RMCP+ session")
	require.Equal(t, bmc.PowerUnknown, st.Power)
	require.Contains(t, f.log.String(), "bmc power off failed")

	err = f.ctrl.Prepare(context.Background(), run(), workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeNetboot}), hw)
	f.noLeak(err)
	require.ErrorContains(t, err, "power off failed after 3 attempts")
	require.ErrorContains(t, err, "Unable to establish IPMI v2 / RMCP+ session")
	evs = f.events("node-01")
	require.Len(t, evs, 2, "Prepare stops at the first failing step: %q", messages(evs))
	require.Contains(t, evs[1].Message, "Workflow/wf-1#1: power off failed after 3 attempts: ")
}

// TestIPMINotListening shows a BMC that does not answer costs one
// CallTimeout per attempt, not bmclib's 52 seconds, and fails with an
// error and an event naming the hardware and the address.
func TestIPMINotListening(t *testing.T) {
	t.Parallel()
	f := newFixture(t, bmc.Config{CallTimeout: 2 * time.Second, Retries: 1})
	f.secret("bmc-node-09", "admin", bmctest.RandomPassword())
	port := bmctest.ClosedUDPPort(t)
	hw := hardware("node-09", &schema.BMC{Address: "127.0.0.1", Port: port, CredentialsRef: "bmc-node-09"}, false)

	start := time.Now()
	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionOn, state.ActorReconciler)
	took := time.Since(start)
	f.noLeak(err)
	require.Error(t, err)
	require.Equal(t, 2, res.Attempts)
	require.GreaterOrEqual(t, took, 4*time.Second)
	require.Less(t, took, 10*time.Second)
	require.ErrorContains(t, err, "hardware node-09: power on failed after 2 attempts: open: 127.0.0.1:")
	require.ErrorContains(t, err, "did not answer in time")

	evs := f.events("node-09")
	require.Len(t, evs, 1)
	require.Equal(t, "node-09", evs[0].Name)
	require.Contains(t, evs[0].Message, "power on failed after 2 attempts: open: 127.0.0.1:")
	require.Contains(t, f.log.String(), "hardware=node-09")
}

// TestMissingSecret shows a secret that is not in the secrets directory
// fails at once (no retries, no BMC traffic) with a message naming the
// secret and the files expected.
func TestMissingSecret(t *testing.T) {
	t.Parallel()
	sim := bmctest.StartIPMI(t)
	f := newFixture(t, bmc.Config{Retries: 3, Backoff: time.Second})
	f.remember(sim.Password)
	hw := hardware("node-01", sim.BMC("bmc-node-01"), false)
	hw.Metadata.Namespace = "rack-1"

	start := time.Now()
	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.ActorReconciler)
	f.noLeak(err)
	require.Less(t, time.Since(start), time.Second, "a missing secret is not retried")
	require.Equal(t, 1, res.Attempts)
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))
	require.ErrorContains(t, err, `hardware rack-1/node-01: power status failed: secret "rack-1/bmc-node-01" not found in secrets directory: want `+
		f.secretsDir+"/rack-1/bmc-node-01/username or "+f.secretsDir+"/bmc-node-01/username")
	require.Empty(t, sim.Calls())
	evs, err := f.store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Namespace: "rack-1", Name: "node-01"}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].Message, `secret "rack-1/bmc-node-01" not found`)

	// A secret folder without its password file names the file.
	f.secret("bmc-node-01", sim.User, sim.Password)
	require.NoError(t, removeFile(f.secretsDir+"/bmc-node-01/password"))
	_, err = f.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.ActorReconciler)
	require.ErrorContains(t, err, `secret "rack-1/bmc-node-01" has no password file: want `+f.secretsDir+"/bmc-node-01/password")
}

// TestSecretRotation shows a changed secret file is used by the next
// operation of the same Controller.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	f := newFixture(t, bmc.Config{Retries: -1})
	f.remember(sim.Password)
	f.secret("bmc-node-01", sim.User, bmctest.RandomPassword())
	hw := hardware("node-01", sim.BMC("bmc-node-01"), false)
	ctx := context.Background()

	_, err := f.ctrl.Power(ctx, hw, bmc.PowerActionStatus, state.ActorReconciler)
	f.noLeak(err)
	require.ErrorContains(t, err, "Unable to establish IPMI v2 / RMCP+ session")

	f.secret("bmc-node-01", sim.User, sim.Password)
	res, err := f.ctrl.Power(ctx, hw, bmc.PowerActionStatus, state.ActorReconciler)
	require.NoError(t, err)
	require.Equal(t, bmc.PowerOn, res.Power)
	require.Empty(t, f.ctrl.Status("", "node-01").Error, "a success clears the last error")
}

// TestIPMIVirtualMediaRefused shows an iso boot on an IPMI BMC fails at
// once with a message saying why, instead of bmclib's "no implementations".
func TestIPMIVirtualMediaRefused(t *testing.T) {
	t.Parallel()
	f, sim, hw := ipmiFixture(t, bmc.Config{Retries: 3, Backoff: time.Second})
	wf := workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeISO, ISOURL: "http://10.0.0.1/hook.iso"})
	start := time.Now()
	err := f.ctrl.Prepare(context.Background(), run(), wf, hw)
	f.noLeak(err)
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, state.EINVALID, state.ErrorCode(err))
	require.ErrorContains(t, err, "insert virtual media CD http://10.0.0.1/hook.iso failed: insert virtual media: virtual media needs a redfish BMC; 127.0.0.1:")
	require.Empty(t, sets(sim.Calls()))
	require.Len(t, f.events("node-01"), 1)
}

// TestNoBMC shows boot actions on hardware without a BMC fail with a
// message naming the hardware and the boot mode, and that a workflow that
// only toggles allowPXE needs no BMC.
func TestNoBMC(t *testing.T) {
	t.Parallel()
	f := newFixture(t, bmc.Config{})
	f.remember(bmctest.RandomPassword())
	hw := hardware("node-01", nil, false)
	ctx := context.Background()

	err := f.ctrl.Prepare(ctx, run(), workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeNetboot}), hw)
	require.EqualError(t, err, "invalid: hardware node-01 has no bmc block or bmcRef: bootMode netboot needs one")
	require.NoError(t, f.ctrl.Prepare(ctx, run(), workflow("node-01", &schema.BootOptions{ToggleAllowNetboot: true}), hw))
	require.NoError(t, f.ctrl.Prepare(ctx, run(), workflow("node-01", nil), hw))
	_, err = f.ctrl.Power(ctx, hw, bmc.PowerActionOn, state.ActorReconciler)
	require.EqualError(t, err, "invalid: hardware node-01 has no bmc block or bmcRef")

	// A bmcRef needs the server's Machine resolver.
	ref := hardware("node-02", nil, false)
	ref.Spec.BMCRef = &schema.TypedObjectRef{Kind: "Machine", Name: "m-2"}
	_, err = f.ctrl.Power(ctx, ref, bmc.PowerActionOn, state.ActorReconciler)
	require.ErrorContains(t, err, `hardware node-02: bmcRef names Machine "m-2", but no Machine resolver is configured`)
	require.Empty(t, f.events("node-01"))
	require.Empty(t, f.events("node-02"))
}

// TestPoll shows the poller records power states without events, writes
// one event when a machine's power changes behind the server's back, stops
// with its context, and records a BMC that stops answering as an error in
// the status, without an event.
func TestPoll(t *testing.T) {
	t.Parallel()
	f, sim, hw := ipmiFixture(t, bmc.Config{CallTimeout: 2 * time.Second}, bmctest.WithPower(true))
	noBMC := hardware("node-02", nil, false)
	list := func(context.Context) ([]*schema.Hardware, error) { return []*schema.Hardware{hw, noBMC}, nil }
	ctx := context.Background()

	require.NoError(t, f.ctrl.PollOnce(ctx, list))
	require.Equal(t, bmc.PowerOn, f.ctrl.Status("", "node-01").Power)
	require.Equal(t, bmc.PowerUnknown, f.ctrl.Status("", "node-02").Power)
	require.NoError(t, f.ctrl.PollOnce(ctx, list))
	require.Empty(t, f.events("node-01"), "no event while nothing changes")

	sim.SetPower(false)
	require.NoError(t, f.ctrl.PollOnce(ctx, list))
	require.Equal(t, bmc.PowerOff, f.ctrl.Status("", "node-01").Power)
	require.Equal(t, []string{"power state changed: on -> off"}, messages(f.events("node-01")))
	require.Empty(t, sets(sim.Calls()), "polling only reads")

	// The loop: polls at once, then every interval, until ctx ends.
	sim.SetPower(true)
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ctrl.Poll(loopCtx, 50*time.Millisecond, list)
	}()
	require.Eventually(t, func() bool { return f.ctrl.Status("", "node-01").Power == bmc.PowerOn }, 5*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not return after its context ended")
	}
	require.Equal(t, []string{"power state changed: on -> off", "power state changed: off -> on"}, messages(f.events("node-01")))

	// Interval 0 is off: Poll returns at once.
	f.ctrl.Poll(ctx, 0, list)

	// A BMC that stops answering: the status says so and keeps the last
	// power state read; no event, since nothing is known to have changed.
	sim.Stop()
	require.NoError(t, f.ctrl.PollOnce(ctx, list))
	st := f.ctrl.Status("", "node-01")
	require.Contains(t, st.Error, "did not answer in time")
	require.Equal(t, bmc.PowerOn, st.Power)
	require.Len(t, f.events("node-01"), 2)
	require.Contains(t, f.log.String(), "bmc poll failed")

	// Hardware no longer listed is forgotten.
	require.NoError(t, f.ctrl.PollOnce(ctx, func(context.Context) ([]*schema.Hardware, error) { return nil, nil }))
	require.Equal(t, bmc.PowerStatus{Power: bmc.PowerUnknown}, f.ctrl.Status("", "node-01"))
}
