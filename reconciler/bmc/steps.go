package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// stepKind says what a step does.
type stepKind int

const (
	stepPower stepKind = iota
	stepBoot
	stepMediaInsert
	stepMediaEject
)

// step is one BMC operation: a power action, a boot device, or a virtual
// media change. Boot actions, overrides and the plan's sentences are all
// built from steps, so what the plan says is what the engine does.
type step struct {
	kind       stepKind
	action     PowerAction
	dev        BootDevice
	persistent bool
	efi        bool
	mediaKind  string
	url        string
	// err marks a step that cannot be done (an unknown device in a
	// customboot action); the plan shows it, Prepare refuses it.
	err error
}

// powerStep is a power action step.
func powerStep(a PowerAction) step { return step{kind: stepPower, action: a} }

// words is how the plan says the step, after "node-01 will be".
func (s step) words() string {
	if s.err != nil {
		return "not prepared (" + s.err.Error() + ")"
	}
	switch s.kind {
	case stepPower:
		switch s.action {
		case PowerActionOn:
			return "powered on"
		case PowerActionOff:
			return "powered off"
		case PowerActionCycle:
			return "power-cycled"
		case PowerActionReset:
			return "reset"
		case PowerActionSoft:
			return "shut down (soft)"
		case PowerActionStatus:
			return "checked for power state"
		}
	case stepBoot:
		w := "set to " + s.dev.words()
		if s.persistent {
			w += " persistently"
		} else {
			w += " once"
		}
		if s.efi {
			w += " (EFI)"
		}
		return w
	case stepMediaInsert:
		if s.mediaKind != "" && s.mediaKind != "CD" {
			return fmt.Sprintf("given virtual media %s as %s", s.url, s.mediaKind)
		}
		return "given virtual media " + s.url
	case stepMediaEject:
		return "rid of its virtual media"
	}
	return "changed"
}

// what names the step in events, logs and errors: "power cycle",
// "boot device pxe once (EFI)", "insert virtual media CD <url>".
func (s step) what() string {
	switch s.kind {
	case stepPower:
		return "power " + string(s.action)
	case stepBoot:
		w := "boot device " + string(s.dev)
		if s.persistent {
			w += " persistent"
		} else {
			w += " once"
		}
		if s.efi {
			w += " (EFI)"
		}
		return w
	case stepMediaInsert:
		return fmt.Sprintf("insert virtual media %s %s", s.kindOrCD(), s.url)
	case stepMediaEject:
		return "eject virtual media " + s.kindOrCD()
	}
	return "bmc step"
}

func (s step) kindOrCD() string {
	if s.mediaKind == "" {
		return "CD"
	}
	return s.mediaKind
}

// do performs the step on an open session and returns the power state it
// read, PowerUnknown when it left the machine in transition, or "" when
// the step does not touch power (boot device, virtual media).
func (s step) do(ctx context.Context, ss *session) (Power, error) {
	switch s.kind {
	case stepPower:
		return s.power(ctx, ss)
	case stepBoot:
		return "", ss.call(ctx, func(ctx context.Context) error {
			return ss.cl.SetBootDevice(ctx, s.dev, s.persistent, s.efi)
		})
	case stepMediaInsert:
		return "", ss.call(ctx, func(ctx context.Context) error {
			return ss.cl.InsertVirtualMedia(ctx, s.kindOrCD(), s.url)
		})
	case stepMediaEject:
		return "", ss.call(ctx, func(ctx context.Context) error {
			return ss.cl.EjectVirtualMedia(ctx, s.kindOrCD())
		})
	}
	return PowerUnknown, errors.New("unknown step")
}

// power does a power action. On and off read the state back, which costs
// one more call and tells the operator where the machine ended up; cycle,
// reset and soft leave the machine in transition, so a read right after
// would mislead and the state is left unknown for the poller.
func (s step) power(ctx context.Context, ss *session) (Power, error) {
	set := func(a PowerAction) error {
		return ss.call(ctx, func(ctx context.Context) error { return ss.cl.SetPower(ctx, a) })
	}
	readBack := func() Power {
		p, err := ss.powerState(ctx)
		if err != nil {
			return PowerUnknown // the action succeeded; the read is a bonus
		}
		return p
	}
	switch s.action {
	case PowerActionStatus:
		return ss.powerState(ctx)
	case PowerActionOn, PowerActionOff:
		if err := set(s.action); err != nil {
			return PowerUnknown, err
		}
		return readBack(), nil
	case PowerActionCycle:
		// A machine that is off is powered on: Redfish BMCs refuse to
		// cycle it, IPMI ones differ, and either way the operator (or
		// the iso boot mode) wants it running from a fresh boot.
		p, err := ss.powerState(ctx)
		if err != nil {
			return PowerUnknown, err
		}
		if p == PowerOff {
			if err := set(PowerActionOn); err != nil {
				return PowerUnknown, err
			}
			return readBack(), nil
		}
		return PowerUnknown, set(PowerActionCycle)
	case PowerActionReset, PowerActionSoft:
		return PowerUnknown, set(s.action)
	}
	return PowerUnknown, fmt.Errorf("unknown power action %q", s.action)
}

// prepareSteps returns the boot actions that wf asks for before its run on
// hw, per bootOptions.bootMode; an EINVALID error for an unknown boot mode
// or an iso mode without isoURL.
func prepareSteps(wf *schema.Workflow, hw *schema.Hardware) ([]step, string, error) {
	bo := bootOptions(wf)
	if bo == nil {
		return nil, "", nil
	}
	mode := bo.BootMode
	switch mode {
	case "":
		// Only toggleAllowNetboot: the engine flips allowPXE itself.
		return nil, "", nil
	case schema.BootModeNetboot:
		return []step{
			powerStep(PowerActionOff),
			{kind: stepBoot, dev: BootPXE, efi: uefi(hw)},
			powerStep(PowerActionOn),
		}, mode, nil
	case schema.BootModeISO, schema.BootModeIsoboot:
		if bo.ISOURL == "" {
			return nil, mode, state.Errorf(state.EINVALID, "bootMode %s needs bootOptions.isoURL", mode)
		}
		return []step{
			{kind: stepMediaInsert, mediaKind: "CD", url: bo.ISOURL},
			{kind: stepBoot, dev: BootCDROM, efi: uefi(hw)},
			powerStep(PowerActionCycle),
		}, mode, nil
	case schema.BootModeCustomboot:
		var actions []schema.BMCAction
		if cc := bo.CustombootConfig; cc != nil {
			actions = cc.PreparingActions
		}
		return actionSteps(actions), mode, nil
	}
	return nil, mode, state.Errorf(state.EINVALID, "unknown bootMode %q: want netboot, iso, isoboot or customboot", mode)
}

// finishSteps returns what is undone after a run: the ISO ejected, or the
// customboot postActions.
func finishSteps(wf *schema.Workflow) ([]step, string) {
	bo := bootOptions(wf)
	if bo == nil {
		return nil, ""
	}
	switch bo.BootMode {
	case schema.BootModeISO, schema.BootModeIsoboot:
		return []step{{kind: stepMediaEject, mediaKind: "CD"}}, bo.BootMode
	case schema.BootModeCustomboot:
		if cc := bo.CustombootConfig; cc != nil {
			return actionSteps(cc.PostActions), bo.BootMode
		}
	}
	return nil, bo.BootMode
}

func bootOptions(wf *schema.Workflow) *schema.BootOptions {
	if wf == nil {
		return nil
	}
	return wf.Spec.BootOptions
}

// actionSteps maps Rufio BMC actions onto steps, one each.
func actionSteps(actions []schema.BMCAction) []step {
	steps := make([]step, 0, len(actions))
	for _, a := range actions {
		steps = append(steps, actionStep(a))
	}
	return steps
}

// actionStep maps one Rufio BMC action. Rufio's oneTimeBootDeviceAction
// lists devices but uses only the first; so does this.
func actionStep(a schema.BMCAction) step {
	switch {
	case a.PowerAction != nil:
		act, err := ParsePowerAction(*a.PowerAction)
		if err != nil {
			return step{kind: stepPower, action: PowerAction(*a.PowerAction), err: errors.New(state.ErrorMessage(err))}
		}
		return powerStep(act)
	case a.OneTimeBootDeviceAction != nil:
		o := a.OneTimeBootDeviceAction
		if len(o.Devices) == 0 {
			return step{kind: stepBoot, err: errors.New("oneTimeBootDeviceAction lists no device")}
		}
		dev, err := ParseBootDevice(o.Devices[0])
		if err != nil {
			return step{kind: stepBoot, dev: BootDevice(o.Devices[0]), err: errors.New(state.ErrorMessage(err))}
		}
		return step{kind: stepBoot, dev: dev, efi: o.EFIBoot}
	case a.BootDevice != nil:
		b := a.BootDevice
		dev, err := ParseBootDevice(b.Device)
		if err != nil {
			return step{kind: stepBoot, dev: BootDevice(b.Device), err: errors.New(state.ErrorMessage(err))}
		}
		return step{kind: stepBoot, dev: dev, persistent: b.Persistent, efi: b.EFIBoot}
	case a.VirtualMediaAction != nil:
		v := a.VirtualMediaAction
		if v.MediaURL == "" {
			return step{kind: stepMediaEject, mediaKind: v.Kind}
		}
		return step{kind: stepMediaInsert, mediaKind: v.Kind, url: v.MediaURL}
	}
	return step{kind: stepPower, err: errors.New("empty BMC action: set powerAction, oneTimeBootDeviceAction, bootDevice or virtualMediaAction")}
}

// Steps returns, in order, what wf's boot actions will do to hw before the
// run, in the words the plan uses: netboot gives "powered off", "set to PXE
// once" (with " (EFI)" for UEFI hardware) and "powered on". Nil when the
// workflow asks for no BMC action. Pure: no I/O, no Controller.
func Steps(wf *schema.Workflow, hw *schema.Hardware) []string {
	steps, _, err := prepareSteps(wf, hw)
	if err != nil {
		return []string{"not prepared (" + state.ErrorMessage(err) + ")"}
	}
	return stepWords(steps)
}

// FinishSteps returns what happens to hw's BMC after the run ends, in the
// same words: "rid of its virtual media" for the iso modes, the
// postActions for customboot.
func FinishSteps(wf *schema.Workflow, hw *schema.Hardware) []string {
	steps, _ := finishSteps(wf)
	return stepWords(steps)
}

func stepWords(steps []step) []string {
	if len(steps) == 0 {
		return nil
	}
	words := make([]string, len(steps))
	for i, s := range steps {
		words[i] = s.words()
	}
	return words
}

// Describe says in one sentence what wf's boot actions will do to hw:
// "node-01 will be powered off, set to PXE once, powered on". Empty when
// there is nothing to do.
func Describe(wf *schema.Workflow, hw *schema.Hardware) string {
	words := Steps(wf, hw)
	if len(words) == 0 {
		return ""
	}
	name := "the hardware"
	if hw != nil {
		name = hwName(hw)
	} else if wf != nil {
		name = wf.Spec.HardwareRef
	}
	return name + " will be " + strings.Join(words, ", ")
}

// Prepare does wf's boot actions on hw before its run starts (it is the
// workflow engine's Preparer). netboot: power off, PXE once, power on, in
// that order; iso and isoboot: insert isoURL as a CD, CD-ROM once, power
// cycle (on, if off); customboot: its preparingActions. A workflow without
// bootMode needs no BMC. Each step is one operation with its retries and
// its event; the first step that still fails stops Prepare, and the error
// carries the BMC's message.
func (c *Controller) Prepare(ctx context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error {
	steps, mode, err := prepareSteps(wf, hw)
	if err != nil {
		return err
	}
	return c.doSteps(ctx, run, hw, mode, steps)
}

// Finish undoes what Prepare did once the run has ended: iso and isoboot
// eject the virtual media, customboot does its postActions, netboot needs
// nothing (the engine sets allowPXE back itself).
func (c *Controller) Finish(ctx context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error {
	steps, mode := finishSteps(wf)
	return c.doSteps(ctx, run, hw, mode, steps)
}

func (c *Controller) doSteps(ctx context.Context, run *state.WorkflowRun, hw *schema.Hardware, mode string, steps []step) error {
	if len(steps) == 0 {
		return nil
	}
	for _, s := range steps {
		if s.err != nil {
			return state.Errorf(state.EINVALID, "hardware %s: bootMode %s: %v", hwName(hw), mode, s.err)
		}
	}
	conn, err := c.bmcOf(ctx, hw, "bootMode "+mode)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if _, err := c.run(ctx, hw, conn, state.ActorReconciler, run, s); err != nil {
			return err
		}
	}
	return nil
}
