package bmc

import (
	"strings"

	"github.com/tinkops/tinkops/state"
)

// Power is a machine's power state, normalised: BMCs answer "Chassis Power
// is on\n" (IPMI), "On" or "PoweringOn" (Redfish), and the API, events and
// the poller compare states, so they need one spelling.
type Power string

// Power states.
const (
	PowerOn      Power = "on"
	PowerOff     Power = "off"
	PowerUnknown Power = "unknown"
)

// Known reports whether p is on or off.
func (p Power) Known() bool { return p == PowerOn || p == PowerOff }

// NormalizePower maps what a BMC says about power to on, off or unknown.
// Transitions count as where they lead ("PoweringOn" is on, "PoweringOff"
// off): a machine that is powering on will be on by the time anyone acts on
// the answer. Anything else is unknown rather than a guess.
func NormalizePower(raw string) Power {
	s := strings.ToLower(strings.TrimSpace(raw))
	s = strings.TrimPrefix(s, "chassis power is ")
	s = strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
	switch s {
	case "on", "poweron", "poweringon", "poweredon", "up":
		return PowerOn
	case "off", "poweroff", "poweringoff", "poweredoff", "down", "softoff":
		return PowerOff
	}
	return PowerUnknown
}

// PowerAction is what an operator or the engine asks a BMC to do with power.
// The names are ipmitool's and Rufio's (and bmclib's), so Tinkerbell
// manifests and muscle memory both work.
type PowerAction string

// Power actions.
const (
	// PowerActionOn powers the machine on; nothing happens if it is on.
	PowerActionOn PowerAction = "on"
	// PowerActionOff cuts power at once (no OS shutdown); nothing happens
	// if it is off.
	PowerActionOff PowerAction = "off"
	// PowerActionCycle turns power off and on again; a machine that is off
	// is just powered on (Redfish BMCs refuse to cycle a machine that is
	// off, and the operator wants it running either way).
	PowerActionCycle PowerAction = "cycle"
	// PowerActionReset is a warm reset, as the reset button does.
	PowerActionReset PowerAction = "reset"
	// PowerActionSoft asks the OS to shut down (ACPI power button).
	PowerActionSoft PowerAction = "soft"
	// PowerActionStatus only reads the power state.
	PowerActionStatus PowerAction = "status"
)

// PowerActions lists the valid power actions, for help texts and errors.
func PowerActions() []PowerAction {
	return []PowerAction{PowerActionOn, PowerActionOff, PowerActionCycle, PowerActionReset, PowerActionSoft, PowerActionStatus}
}

// ParsePowerAction returns the action named s (case-insensitive); an
// EINVALID error listing the valid ones otherwise.
func ParsePowerAction(s string) (PowerAction, error) {
	a := PowerAction(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range PowerActions() {
		if a == v {
			return a, nil
		}
	}
	return "", state.Errorf(state.EINVALID, "unknown power action %q: want one of on, off, cycle, reset, soft, status", s)
}

// BootDevice is the device a machine boots from next.
type BootDevice string

// Boot devices; the values are bmclib's (and ipmitool's) names.
const (
	BootPXE   BootDevice = "pxe"
	BootDisk  BootDevice = "disk"
	BootCDROM BootDevice = "cdrom"
	BootBIOS  BootDevice = "bios"
)

// BootDevices lists the valid boot devices.
func BootDevices() []BootDevice {
	return []BootDevice{BootPXE, BootDisk, BootCDROM, BootBIOS}
}

// ParseBootDevice returns the boot device named s (case-insensitive); an
// EINVALID error listing the valid ones otherwise.
func ParseBootDevice(s string) (BootDevice, error) {
	d := BootDevice(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range BootDevices() {
		if d == v {
			return d, nil
		}
	}
	return "", state.Errorf(state.EINVALID, "unknown boot device %q: want one of pxe, disk, cdrom, bios", s)
}

// words is how Steps and event messages name a boot device.
func (d BootDevice) words() string {
	switch d {
	case BootPXE:
		return "PXE"
	case BootDisk:
		return "disk"
	case BootCDROM:
		return "CD-ROM"
	case BootBIOS:
		return "BIOS setup"
	}
	return string(d)
}
