package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
)

// powerActions and bootDevices are what the server accepts; listing them
// here gives the CLI's help and an early, local error for a typo.
var (
	powerActions = []string{"on", "off", "cycle", "reset", "soft", "status"}
	bootDevices  = []string{"pxe", "disk", "cdrom", "bios"}
)

func newHardwarePowerCommand(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:       "power NAME " + strings.Join(powerActions, "|"),
		Short:     "Power a machine on, off, cycle, reset or soft-off through its BMC, or read its power state",
		Long:      "power runs the action on the machine's BMC (the hardware's bmc block or bmcRef, credentials from the server's secrets directory) and records it as an event naming you.",
		Args:      cobra.ExactArgs(2),
		ValidArgs: powerActions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !contains(powerActions, args[1]) {
				return fmt.Errorf("unknown power action %q: want one of %s", args[1], strings.Join(powerActions, ", "))
			}
			return bmcCall(cmd, g, namespace, args[0], func(c *client.Client) (*client.BMCResult, error) {
				return c.Power(cmd.Context(), namespace, args[0], args[1])
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the hardware")
	return cmd
}

func newHardwareBootdevCommand(g *globals) *cobra.Command {
	var namespace string
	var persistent bool
	cmd := &cobra.Command{
		Use:   "bootdev NAME " + strings.Join(bootDevices, "|"),
		Short: "Set a machine's next boot device through its BMC (once, or --persistent)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !contains(bootDevices, args[1]) {
				return fmt.Errorf("unknown boot device %q: want one of %s", args[1], strings.Join(bootDevices, ", "))
			}
			return bmcCall(cmd, g, namespace, args[0], func(c *client.Client) (*client.BMCResult, error) {
				return c.BootDevice(cmd.Context(), namespace, args[0], args[1], persistent)
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the hardware")
	cmd.Flags().BoolVar(&persistent, "persistent", false, "keep the device for every boot, not only the next")
	return cmd
}

// bmcCall runs one BMC override and prints what it did.
func bmcCall(cmd *cobra.Command, g *globals, namespace, name string, fn func(*client.Client) (*client.BMCResult, error)) error {
	return apiCall(cmd, g, fn, func(res *client.BMCResult) string {
		line := fmt.Sprintf("%s: %s done via %s in %.2fs", ref(client.Hardware, namespace, name), res.Action, res.Provider, res.Seconds)
		if res.Power != "" {
			line += "; power " + res.Power
		}
		return line
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
