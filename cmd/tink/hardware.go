package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
)

func newHardwareCommand(g *globals) *cobra.Command {
	rc := &resourceCmd{
		g:       g,
		res:     client.Hardware,
		columns: []string{"NAME", "MAC", "IP", "HOSTNAME", "SOURCE", "STATE", "POWER"},
		row:     hardwareRow,
	}
	cmd := &cobra.Command{
		Use:     "hardware",
		Aliases: []string{"hw"},
		Short:   "Work with hardware on tink-server",
	}
	cmd.AddCommand(newHardwarePushCommand(g), rc.updateCommand(), rc.listCommand(), rc.getCommand(), rc.deleteCommand(),
		newHardwarePowerCommand(g), newHardwareBootdevCommand(g), newObjectEventsCommand(g, "Hardware", "machine"))
	return cmd
}

func newHardwarePushCommand(g *globals) *cobra.Command {
	var file, reason string
	var force bool
	cmd := &cobra.Command{
		Use:   "push --file FILE",
		Short: "Create or update hardware from a file (YAML or JSON, one or many documents; - reads standard input)",
		Long: `push checks every object of FILE as tink validate checks a file, then
creates each machine on tink-server, or updates it if it exists. Machines
pushed here have source api and Git never prunes them. A machine that Git
manages is changed only with --force: the change is recorded as an override
(with --reason) and lasts until Git changes the machine again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readObjects(cmd, file)
			if err != nil {
				return err
			}
			return pushObjects(cmd, g, client.Hardware, file, objs, client.WriteOptions{Force: force, Reason: reason}, pushApply)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with Hardware objects, or - for standard input")
	cmd.Flags().BoolVar(&force, "force", false, "override machines that Git manages")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with an override")
	return cmd
}

// hardwareRow is a machine's line: its first interface, and the state of the
// workflow run on it.
func hardwareRow(o client.Object, _ time.Time) []string {
	var spec schema.HardwareSpec
	_ = json.Unmarshal(o.Spec, &spec)
	var mac, ip, host string
	for _, iface := range spec.Interfaces {
		if iface.DHCP == nil {
			continue
		}
		mac, host = iface.DHCP.MAC, iface.DHCP.Hostname
		if iface.DHCP.IP != nil {
			ip = iface.DHCP.IP.Address
		}
		break
	}
	if n := len(spec.Interfaces); n > 1 && mac != "" {
		mac += fmt.Sprintf(" (+%d)", n-1)
	}
	st := ""
	if o.Status != nil && o.Status.Workflow != nil {
		w := o.Status.Workflow
		st = fmt.Sprintf("%s (%s#%d)", w.State, w.Name, w.Run)
	}
	power := ""
	if o.Status != nil && o.Status.Power != nil {
		power = o.Status.Power.State
	}
	return []string{o.Metadata.Name, mac, ip, host, source(o.Status), st, power}
}
