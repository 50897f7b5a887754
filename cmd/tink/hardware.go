package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
)

func newHardwareCommand(g *globals) *cobra.Command {
	rc := &resourceCmd{
		g:       g,
		res:     client.Hardware,
		columns: hardwareColumns,
		row:     hardwareRow,
		detail:  hardwareDetail,
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

// hardwareColumns head hardware's table.
var hardwareColumns = []string{"NAME", "MAC", "IP", "HOSTNAME", "SOURCE", "STATE", "POWER"}

// hardwareDetail is what tink hardware get prints: the machine's line and,
// when a Tinkerbell agent reported them, the attributes it discovered.
func hardwareDetail(w io.Writer, o client.Object, now time.Time) error {
	header, cells := hardwareColumns, hardwareRow(o, now)
	if o.Metadata.Namespace != "" {
		header, cells = append([]string{"NAMESPACE"}, header...), append([]string{o.Metadata.Namespace}, cells...)
	}
	t := newTable(w, header...)
	t.row(cells...)
	if err := t.flush(); err != nil {
		return err
	}
	var st struct {
		Agent *agentStatus `json:"agent"`
	}
	if o.Status == nil || len(o.Status.Runtime) == 0 || json.Unmarshal(o.Status.Runtime, &st) != nil || st.Agent == nil {
		return nil
	}
	a, at := st.Agent, st.Agent.Attributes
	fmt.Fprintln(w)
	kv := newTable(w)
	kv.row("Agent:", fmt.Sprintf("%s (attributes reported %s ago)", a.ID, age(now, a.ReportedAt)))
	if c := at.CPU; c != nil {
		cpu := fmt.Sprintf("%d cores, %d threads", c.TotalCores, c.TotalThreads)
		if len(c.Processors) > 0 {
			cpu += fmt.Sprintf(" (%d x %s %s)", len(c.Processors), c.Processors[0].Vendor, c.Processors[0].Model)
		}
		kv.row("CPU:", cpu)
	}
	if m := at.Memory; m != nil {
		kv.row("Memory:", m.Total)
	}
	for _, b := range at.Block {
		kv.row("Disk:", strings.TrimSpace(strings.Join([]string{b.Name, b.Size, b.DriveType, b.Model}, " ")))
	}
	for _, n := range at.Network {
		kv.row("NIC:", strings.TrimSpace(strings.Join([]string{n.Name, n.MAC, n.Speed}, " ")))
	}
	if p := at.Product; p != nil {
		kv.row("Product:", strings.TrimSpace(strings.Join([]string{p.Vendor, p.Name, p.SerialNumber}, " ")))
	}
	if b := at.BIOS; b != nil {
		kv.row("BIOS:", strings.TrimSpace(strings.Join([]string{b.Vendor, b.Version}, " ")))
	}
	return kv.flush()
}

// agentStatus is the part of a hardware's stored status that a Tinkerbell
// agent's attributes fill (protobuf JSON names).
type agentStatus struct {
	ID         string    `json:"id"`
	ReportedAt time.Time `json:"reportedAt"`
	Attributes struct {
		CPU *struct {
			TotalCores   uint32 `json:"totalCores"`
			TotalThreads uint32 `json:"totalThreads"`
			Processors   []struct {
				Vendor string `json:"vendor"`
				Model  string `json:"model"`
			} `json:"processors"`
		} `json:"cpu"`
		Memory *struct {
			Total string `json:"total"`
		} `json:"memory"`
		Block []struct {
			Name      string `json:"name"`
			Size      string `json:"size"`
			DriveType string `json:"driveType"`
			Model     string `json:"model"`
		} `json:"block"`
		Network []struct {
			Name  string `json:"name"`
			MAC   string `json:"mac"`
			Speed string `json:"speed"`
		} `json:"network"`
		Product *struct {
			Vendor       string `json:"vendor"`
			Name         string `json:"name"`
			SerialNumber string `json:"serialNumber"`
		} `json:"product"`
		BIOS *struct {
			Vendor  string `json:"vendor"`
			Version string `json:"version"`
		} `json:"bios"`
	} `json:"attributes"`
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
