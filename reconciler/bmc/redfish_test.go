package bmc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// redfishFixture starts a Redfish BMC and a fixture that trusts its
// certificate, with its credentials in secret "bmc-node-01".
func redfishFixture(t *testing.T, opts ...bmctest.Option) (*fixture, *bmctest.Redfish, *schema.Hardware) {
	t.Helper()
	rf := bmctest.StartRedfish(t, opts...)
	f := newFixture(t, bmc.Config{RootCAs: rf.CertPool()})
	f.secret("bmc-node-01", rf.User, rf.Password)
	return f, rf, hardware("node-01", rf.BMC("bmc-node-01"), true)
}

// resets returns the Reset requests of calls.
func resets(calls []string) []string {
	var out []string
	for _, c := range calls {
		if rest, ok := strings.CutPrefix(c, "POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestRedfishPower shows power actions over Redfish: the ResetType each
// sends, the normalised state read back, one event each, and that every
// operation logs out of its session.
func TestRedfishPower(t *testing.T) {
	t.Parallel()
	f, rf, hw := redfishFixture(t)
	ctx := context.Background()
	actor := state.APIUser("carol")

	for _, step := range []struct {
		action bmc.PowerAction
		resets []string
		power  bmc.Power
		sim    string
	}{
		{bmc.PowerActionStatus, nil, bmc.PowerOff, "Off"},
		{bmc.PowerActionOn, []string{"ResetType=On"}, bmc.PowerOn, "On"},
		{bmc.PowerActionOn, nil, bmc.PowerOn, "On"}, // already on: nothing sent
		{bmc.PowerActionCycle, []string{"ResetType=ForceRestart"}, bmc.PowerUnknown, "On"},
		{bmc.PowerActionReset, []string{"ResetType=PowerCycle"}, bmc.PowerUnknown, "On"},
		{bmc.PowerActionOff, []string{"ResetType=ForceOff"}, bmc.PowerOff, "Off"},
		{bmc.PowerActionCycle, []string{"ResetType=On"}, bmc.PowerOn, "On"}, // off: powered on
		{bmc.PowerActionSoft, []string{"ResetType=GracefulShutdown"}, bmc.PowerUnknown, "Off"},
		{bmc.PowerActionStatus, nil, bmc.PowerOff, "Off"},
	} {
		rf.ResetCalls()
		res, err := f.ctrl.Power(ctx, hw, step.action, actor)
		f.noLeak(err)
		require.NoError(t, err, "power %s", step.action)
		require.Equal(t, "gofish", res.Provider)
		require.Equal(t, step.power, res.Power, "power %s", step.action)
		require.Equal(t, step.resets, resets(rf.Calls()), "power %s", step.action)
		require.Equal(t, step.sim, rf.Power(), "power %s", step.action)
		require.Zero(t, rf.Sessions(), "power %s left a session open", step.action)
	}
	evs := f.events("node-01")
	require.Len(t, evs, 9)
	require.Regexp(t, `^power status: ok via gofish in .* \(power off\)$`, evs[0].Message)
	require.Regexp(t, `^power cycle: ok via gofish in [^(]*$`, evs[3].Message)
	require.Regexp(t, `^power soft: ok via gofish in [^(]*$`, evs[7].Message)
}

// TestRedfishBootOverride shows a one-time PXE boot becomes the
// ComputerSystem's boot override (UEFI for UEFI hardware).
func TestRedfishBootOverride(t *testing.T) {
	t.Parallel()
	f, rf, hw := redfishFixture(t)
	_, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.APIUser("carol"))
	require.NoError(t, err)
	res, err := f.ctrl.BootDevice(context.Background(), hw, bmc.BootPXE, false, state.APIUser("carol"))
	require.NoError(t, err)
	require.Equal(t, "gofish", res.Provider)
	require.Equal(t, bmc.PowerUnknown, res.Power, "setting the boot device does not read power")
	require.Equal(t, bmc.PowerOff, f.ctrl.Status("", "node-01").Power, "nor does it forget it")
	require.Equal(t, bmctest.RedfishBoot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}, rf.Boot())
	require.Contains(t, rf.Calls(), "PATCH /redfish/v1/Systems/1 Boot=Pxe/Once/UEFI")

	hw.Spec.Interfaces[0].DHCP.UEFI = false
	_, err = f.ctrl.BootDevice(context.Background(), hw, bmc.BootDisk, true, state.APIUser("carol"))
	require.NoError(t, err)
	require.Equal(t, bmctest.RedfishBoot{Target: "Hdd", Enabled: "Continuous", Mode: "Legacy"}, rf.Boot())
	require.Equal(t, []string{
		"power status: ok via gofish in ",
		"boot device pxe once (EFI): ok via gofish in ",
		"boot device disk persistent: ok via gofish in ",
	}, prefixes(messages(f.events("node-01")), " in "))
}

// TestRedfishISOPrepareFinish shows the iso boot mode over Redfish: the
// ISO inserted as a CD, CD-ROM once, powered on (it was off), one event per
// step; then Finish ejects the CD. A second Prepare replaces the image.
func TestRedfishISOPrepareFinish(t *testing.T) {
	t.Parallel()
	f, rf, hw := redfishFixture(t)
	ctx := context.Background()
	wf := workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeISO, ISOURL: "http://10.0.0.1/hook.iso"})

	require.NoError(t, f.ctrl.Prepare(ctx, run(), wf, hw))
	requireOrder(t, rf.Calls(),
		"POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia Image=http://10.0.0.1/hook.iso",
		"PATCH /redfish/v1/Systems/1 Boot=Cd/Once/UEFI",
		"POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset ResetType=On")
	image, inserted := rf.Media()
	require.Equal(t, "http://10.0.0.1/hook.iso", image)
	require.True(t, inserted)
	require.Equal(t, "On", rf.Power())
	require.Equal(t, []string{
		"Workflow/wf-1#1: insert virtual media CD http://10.0.0.1/hook.iso: ok via gofish in ",
		"Workflow/wf-1#1: boot device cdrom once (EFI): ok via gofish in ",
		"Workflow/wf-1#1: power cycle: ok via gofish in ",
	}, prefixes(messages(f.events("node-01")), " in "))

	rf.ResetCalls()
	require.NoError(t, f.ctrl.Finish(ctx, run(), wf, hw))
	require.Contains(t, rf.Calls(), "POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia")
	_, inserted = rf.Media()
	require.False(t, inserted)
	evs := f.events("node-01")
	require.Len(t, evs, 4)
	require.Contains(t, evs[3].Message, "Workflow/wf-1#1: eject virtual media CD: ok via gofish")

	// The machine is on now: a second run power-cycles it, and an image
	// left inserted is ejected before the new one goes in.
	require.NoError(t, f.ctrl.Prepare(ctx, run(), wf, hw))
	wf.Spec.BootOptions.ISOURL = "http://10.0.0.1/other.iso"
	rf.ResetCalls()
	require.NoError(t, f.ctrl.Prepare(ctx, run(), wf, hw))
	requireOrder(t, rf.Calls(),
		"POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia",
		"POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia Image=http://10.0.0.1/other.iso",
		"POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset ResetType=ForceRestart")
	image, _ = rf.Media()
	require.Equal(t, "http://10.0.0.1/other.iso", image)
	require.Zero(t, rf.Sessions())
}

// TestRedfishCustomboot shows customboot's Rufio actions map onto the same
// calls, in order, before and after the run.
func TestRedfishCustomboot(t *testing.T) {
	t.Parallel()
	f, rf, hw := redfishFixture(t, bmctest.WithPower(true))
	ctx := context.Background()
	off, on := "off", "on"
	wf := workflow("node-01", &schema.BootOptions{BootMode: schema.BootModeCustomboot, CustombootConfig: &schema.CustombootConfig{
		PreparingActions: []schema.BMCAction{
			{PowerAction: &off},
			{VirtualMediaAction: &schema.VirtualMediaAction{MediaURL: "http://10.0.0.1/custom.iso", Kind: "CD"}},
			{OneTimeBootDeviceAction: &schema.OneTimeBootDeviceAction{Devices: []string{"cdrom"}, EFIBoot: true}},
			{PowerAction: &on},
		},
		PostActions: []schema.BMCAction{
			{VirtualMediaAction: &schema.VirtualMediaAction{Kind: "CD"}},
			{BootDevice: &schema.BootDeviceConfig{Device: "disk", Persistent: true}},
		},
	}})
	require.Equal(t, "node-01 will be powered off, given virtual media http://10.0.0.1/custom.iso, set to CD-ROM once (EFI), powered on", bmc.Describe(wf, hw))

	require.NoError(t, f.ctrl.Prepare(ctx, run(), wf, hw))
	requireOrder(t, rf.Calls(),
		"POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset ResetType=ForceOff",
		"POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia Image=http://10.0.0.1/custom.iso",
		"PATCH /redfish/v1/Systems/1 Boot=Cd/Once/UEFI",
		"POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset ResetType=On")
	require.Len(t, f.events("node-01"), 4)

	rf.ResetCalls()
	require.NoError(t, f.ctrl.Finish(ctx, run(), wf, hw))
	requireOrder(t, rf.Calls(),
		"POST /redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia",
		"PATCH /redfish/v1/Systems/1 Boot=Hdd/Continuous/Legacy")
	require.Len(t, f.events("node-01"), 6)
}

// TestRedfishWrongPassword shows a rejected login fails after the retries
// with the BMC's message and an event.
func TestRedfishWrongPassword(t *testing.T) {
	t.Parallel()
	rf := bmctest.StartRedfish(t)
	f := newFixture(t, bmc.Config{RootCAs: rf.CertPool(), Retries: 1})
	f.remember(rf.Password)
	f.secret("bmc-node-01", rf.User, bmctest.RandomPassword())
	hw := hardware("node-01", rf.BMC("bmc-node-01"), false)

	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionOn, state.APIUser("carol"))
	f.noLeak(err)
	require.Equal(t, 2, res.Attempts)
	require.ErrorContains(t, err, "hardware node-01: power on failed after 2 attempts: open: provider: gofish: 401: ")
	require.ErrorContains(t, err, "Invalid username or password.")
	require.NotContains(t, err.Error(), "no Opener implementations found", "bmclib's summary line is dropped")
	require.Equal(t, "Off", rf.Power())
	require.Equal(t, []string{
		"POST /redfish/v1/SessionService/Sessions user=admin -> 401",
		"POST /redfish/v1/SessionService/Sessions user=admin -> 401",
	}, filter(rf.Calls(), "POST "))
	evs := f.events("node-01")
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].Message, "power on failed after 2 attempts: open: provider: gofish: 401: ")
}

// TestRedfishTLSVerified shows certificates are checked unless the BMC is
// declared insecureTLS: a BMC whose CA the server does not know fails
// without sending credentials, and insecureTLS lets it through.
func TestRedfishTLSVerified(t *testing.T) {
	t.Parallel()
	rf := bmctest.StartRedfish(t)
	f := newFixture(t, bmc.Config{Retries: -1}) // system roots only
	f.secret("bmc-node-01", rf.User, rf.Password)
	hw := hardware("node-01", rf.BMC("bmc-node-01"), false)

	_, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.ActorReconciler)
	f.noLeak(err)
	require.ErrorContains(t, err, "certificate")
	require.Empty(t, filter(rf.Calls(), "POST "), "no login to an unverified BMC")

	hw.Spec.BMC.InsecureTLS = true
	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.ActorReconciler)
	require.NoError(t, err)
	require.Equal(t, bmc.PowerOff, res.Power)

	// A CA bundle file works as the pool does.
	g := newFixture(t, bmc.Config{CACertFile: rf.CAFile(t)})
	g.secret("bmc-node-01", rf.User, rf.Password)
	hw.Spec.BMC.InsecureTLS = false
	_, err = g.ctrl.Power(context.Background(), hw, bmc.PowerActionStatus, state.ActorReconciler)
	require.NoError(t, err)
}

// filter returns the calls starting with prefix.
func filter(calls []string, prefix string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
