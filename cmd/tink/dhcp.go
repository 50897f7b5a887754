package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
)

// newDHCPCommand prints DHCP configuration for the fleet: DHCP stays the
// site's own server, tinkops only tells it which machines to answer and
// where their boot script is.
func newDHCPCommand(g *globals) *cobra.Command {
	var format, bootURL, repo, tftpRoot, tftpServer string
	cmd := &cobra.Command{
		Use:   "dhcp --boot-url URL",
		Short: "Print the DHCP server configuration for the fleet (dnsmasq or ISC Kea): host entries and the chainload to tinkops's iPXE script",
		Long: `dhcp prints configuration for the site's DHCP server: one host entry per
interface (MAC, IP, hostname, lease time, router and name servers as the
Hardware declares them), and the rules that chainload iPXE and point it at
tinkops's machine-facing listener (tink-server --boot-listen, reached at
--boot-url). Only the fleet's MACs get boot rules: other clients on the
network are answered as before.

The fleet comes from the server (--server), or from a repository directory
(--repo DIR) for a DHCP configuration kept in Git beside the hardware.

Firmware without iPXE first gets undionly.kpxe (BIOS) or ipxe.efi (UEFI x86-64)
over TFTP: dnsmasq's own from --tftp-root (Debian's ipxe package installs them
in /usr/lib/ipxe), or for Kea (--format kea) the server --tftp-server names.
iPXE then fetches /ipxe/chain.ipxe, which chains to the machine's own script by
its MAC. Kea's output holds client classes and one subnet per declared
address/netmask with its reservations, to merge into kea-dhcp4.conf.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "dnsmasq" && format != "kea" {
				return fmt.Errorf("--format %q: want dnsmasq or kea", format)
			}
			u, err := url.Parse(bootURL)
			if bootURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--boot-url %q: want tinkops's machine-facing URL, such as http://10.0.0.1:8080 (tink-server --boot-listen)", bootURL)
			}
			var hws []*schema.Hardware
			from := ""
			if repo != "" {
				set, err := schema.NewLoader().Load(cmd.Context(), os.DirFS(repo))
				if err != nil {
					return fmt.Errorf("repository %s: %w", repo, err)
				}
				hws, from = set.Hardware, "repository "+repo
			} else {
				c, err := g.client()
				if err != nil {
					return err
				}
				objs, err := c.ListAll(cmd.Context(), client.Hardware, client.ListOptions{})
				if err != nil {
					return err
				}
				for _, o := range objs {
					h := &schema.Hardware{Metadata: schema.ObjectMeta{Name: o.Metadata.Name, Namespace: o.Metadata.Namespace}}
					if err := json.Unmarshal(o.Spec, &h.Spec); err != nil {
						return fmt.Errorf("hardware %s: %w", o.Metadata.Name, err)
					}
					hws = append(hws, h)
				}
				from = "server " + c.BaseURL()
			}
			hosts, err := fleetHosts(hws)
			if err != nil {
				return err
			}
			if format == "kea" {
				if tftpServer == "" && checkIPv4(u.Hostname()) == nil {
					tftpServer = u.Hostname()
				}
				return writeKea(cmd.OutOrStdout(), hosts, strings.TrimRight(bootURL, "/"), tftpServer, from)
			}
			return writeDnsmasq(cmd.OutOrStdout(), hosts, strings.TrimRight(bootURL, "/"), tftpRoot, from)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "dnsmasq", "configuration format: dnsmasq or kea (ISC Kea DHCPv4, JSON)")
	f.StringVar(&bootURL, "boot-url", "", "tinkops's machine-facing listener as machines reach it (tink-server --boot-listen), such as http://10.0.0.1:8080")
	f.StringVar(&repo, "repo", "", "read the fleet from this repository directory instead of the server")
	f.StringVar(&tftpRoot, "tftp-root", "/usr/lib/ipxe", "dnsmasq: directory its TFTP serves the iPXE binaries (undionly.kpxe, ipxe.efi) from")
	f.StringVar(&tftpServer, "tftp-server", "", "kea: IPv4 address of the TFTP server holding the iPXE binaries (default: --boot-url's host, if an address)")
	return cmd
}

// dnsName is a hostname DHCP servers accept: letters, digits and hyphens
// in dot-separated labels.
var dnsName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// dhcpHost is one interface's lease, checked for what DHCP servers'
// syntax cannot carry (a comma, a space, an IPv6 address in an IPv4 lease),
// so a configuration never says more than the Hardware does.
type dhcpHost struct {
	at       string // "hardware node-01: interfaces[0]"
	mac      string
	ip       netip.Addr
	subnet   netip.Prefix // from ip and netmask, if both are declared
	hostname string
	lease    int64
	router   string
	dns      []string
}

// fleetHosts lists the fleet's interfaces that take DHCP, sorted by
// hardware; every field that cannot be written is an error naming it.
func fleetHosts(hws []*schema.Hardware) ([]dhcpHost, error) {
	sort.Slice(hws, func(i, j int) bool {
		a, b := hws[i].Metadata, hws[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var out []dhcpHost
	var errs []error
	for _, h := range hws {
		name := h.Metadata.Name
		if h.Metadata.Namespace != "" {
			name = h.Metadata.Namespace + "/" + name
		}
		for i, iface := range h.Spec.Interfaces {
			d := iface.DHCP
			if d == nil || d.MAC == "" || iface.DisableDHCP {
				continue
			}
			host := dhcpHost{at: fmt.Sprintf("hardware %s: interfaces[%d]", name, i), mac: d.MAC, hostname: d.Hostname, lease: d.LeaseTime}
			bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s.dhcp.%s: %v", host.at, field, err)) }
			if d.IP != nil && d.IP.Address != "" {
				a, err := netip.ParseAddr(d.IP.Address)
				if err != nil || !a.Is4() {
					bad("ip.address", fmt.Errorf("%q is not an IPv4 address (DHCPv4 leases only)", d.IP.Address))
					continue
				}
				host.ip = a
				if d.IP.Netmask != "" {
					m, err := netip.ParseAddr(d.IP.Netmask)
					bits := -1
					if err == nil && m.Is4() {
						bits = maskBits(m.As4())
					}
					if bits < 0 {
						bad("ip.netmask", fmt.Errorf("%q is not an IPv4 netmask", d.IP.Netmask))
						continue
					}
					host.subnet = netip.PrefixFrom(a, bits).Masked()
				}
				if g := d.IP.Gateway; g != "" {
					if err := checkIPv4(g); err != nil {
						bad("ip.gateway", err)
						continue
					}
					host.router = g
				}
			}
			if d.Hostname != "" && !dnsName.MatchString(d.Hostname) {
				bad("hostname", fmt.Errorf("%q is not a hostname DHCP servers accept (letters, digits, hyphens, dots)", d.Hostname))
				continue
			}
			for _, ns := range d.NameServers {
				if err := checkIPv4(ns); err != nil {
					bad("name_servers", err)
					continue
				}
				host.dns = append(host.dns, ns)
			}
			out = append(out, host)
		}
	}
	return out, errors.Join(errs...)
}

// maskBits is the prefix length of a contiguous netmask, or -1.
func maskBits(m [4]byte) int {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return bits
}

// writeDnsmasq writes the dnsmasq configuration for the fleet.
func writeDnsmasq(w io.Writer, hosts []dhcpHost, bootURL, tftpRoot, from string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# tinkops: DHCP for the fleet of %s, written by tink dhcp.\n", from)
	b.WriteString("# Regenerate it when hardware changes; netboot permission (allowPXE) is\n# decided by tinkops when the machine asks for its script, not here.\n\n")
	b.WriteString("# Only the fleet's MACs (tag tinkops) get boot rules.\n")
	b.WriteString("dhcp-userclass=set:ipxe,iPXE\n")
	b.WriteString("dhcp-match=set:ipxe,175\n")
	b.WriteString("dhcp-match=set:efi64,option:client-arch,7\n")
	b.WriteString("dhcp-match=set:efi64,option:client-arch,9\n")
	if tftpRoot != "" {
		if strings.ContainsAny(tftpRoot, ", \t\n") {
			return fmt.Errorf("--tftp-root %q: no commas or spaces", tftpRoot)
		}
		b.WriteString("enable-tftp\ntftp-root=" + tftpRoot + "\n")
	}
	b.WriteString("# Firmware without iPXE gets iPXE first; iPXE gets tinkops's script.\n")
	b.WriteString("dhcp-boot=tag:tinkops,tag:!ipxe,tag:!efi64,undionly.kpxe\n")
	b.WriteString("dhcp-boot=tag:tinkops,tag:!ipxe,tag:efi64,ipxe.efi\n")
	b.WriteString("dhcp-boot=tag:tinkops,tag:ipxe," + bootURL + "/ipxe/chain.ipxe\n")
	for n, h := range hosts {
		tag := fmt.Sprintf("hw%d", n)
		fields := []string{h.mac, "set:tinkops", "set:" + tag}
		if h.ip.IsValid() {
			fields = append(fields, h.ip.String())
		}
		if h.hostname != "" {
			fields = append(fields, h.hostname)
		}
		if h.lease > 0 {
			fields = append(fields, fmt.Sprintf("%ds", max(h.lease, 120)))
		}
		fmt.Fprintf(&b, "\n# %s\ndhcp-host=%s\n", h.at, strings.Join(fields, ","))
		if h.router != "" {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:router,%s\n", tag, h.router)
		}
		if len(h.dns) > 0 {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, strings.Join(h.dns, ","))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeKea writes an ISC Kea DHCPv4 configuration for the fleet: client
// classes that chainload iPXE and point it at tinkops, and one
// reservation per interface in the subnet its address and netmask name.
// Kea serves no TFTP: tftpServer holds the iPXE binaries.
func writeKea(w io.Writer, hosts []dhcpHost, bootURL, tftpServer, from string) error {
	type option struct {
		Name string `json:"name"`
		Data string `json:"data"`
	}
	type reservation struct {
		HWAddress  string   `json:"hw-address"`
		IPAddress  string   `json:"ip-address,omitempty"`
		Hostname   string   `json:"hostname,omitempty"`
		OptionData []option `json:"option-data,omitempty"`
	}
	type subnet struct {
		ID           int           `json:"id"`
		Subnet       string        `json:"subnet"`
		ValidLife    int64         `json:"valid-lifetime,omitempty"`
		Reservations []reservation `json:"reservations"`
	}
	type class struct {
		Name         string `json:"name"`
		Test         string `json:"test"`
		NextServer   string `json:"next-server,omitempty"`
		BootFileName string `json:"boot-file-name"`
	}
	if err := checkIPv4(tftpServer); err != nil {
		return fmt.Errorf("--tftp-server: %v (Kea needs the TFTP server that holds undionly.kpxe and ipxe.efi)", err)
	}
	// Only clients with a reservation (Kea's KNOWN class) get boot rules.
	classes := []class{
		{Name: "tinkops-ipxe", Test: "member('KNOWN') and (option[77].hex == 'iPXE' or option[175].exists)", BootFileName: bootURL + "/ipxe/chain.ipxe"},
		{Name: "tinkops-efi64", Test: "member('KNOWN') and not member('tinkops-ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)", NextServer: tftpServer, BootFileName: "ipxe.efi"},
		{Name: "tinkops-bios", Test: "member('KNOWN') and not member('tinkops-ipxe') and not member('tinkops-efi64')", NextServer: tftpServer, BootFileName: "undionly.kpxe"},
	}
	bySubnet := map[netip.Prefix]*subnet{}
	var subnets []*subnet
	var errs []error
	for _, h := range hosts {
		if !h.subnet.IsValid() {
			errs = append(errs, fmt.Errorf("%s.dhcp.ip: Kea reservations live in a subnet: declare address and netmask", h.at))
			continue
		}
		s := bySubnet[h.subnet]
		if s == nil {
			s = &subnet{ID: len(subnets) + 1, Subnet: h.subnet.String()}
			bySubnet[h.subnet] = s
			subnets = append(subnets, s)
		}
		if h.lease > 0 && (s.ValidLife == 0 || h.lease < s.ValidLife) {
			s.ValidLife = max(h.lease, 120) // Kea's lifetime is per subnet: the shortest asked for
		}
		r := reservation{HWAddress: h.mac, IPAddress: h.ip.String(), Hostname: h.hostname}
		if h.router != "" {
			r.OptionData = append(r.OptionData, option{Name: "routers", Data: h.router})
		}
		if len(h.dns) > 0 {
			r.OptionData = append(r.OptionData, option{Name: "domain-name-servers", Data: strings.Join(h.dns, ", ")})
		}
		s.Reservations = append(s.Reservations, r)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	doc := map[string]any{"Dhcp4": map[string]any{"client-classes": classes, "subnet4": subnets}}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "// tinkops: DHCP for the fleet of %s, written by tink dhcp --format kea.\n// Merge client-classes and subnet4 into the site's kea-dhcp4.conf (interfaces, lease database).\n%s\n", from, body)
	return err
}

func checkIPv4(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("%q is not an IPv4 address", s)
	}
	return nil
}
