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
	var format, bootURL, repo, tftpRoot string
	cmd := &cobra.Command{
		Use:   "dhcp --boot-url URL",
		Short: "Print the DHCP server configuration for the fleet (dnsmasq): host entries and the chainload to tinkops's iPXE script",
		Long: `dhcp prints configuration for the site's DHCP server: one host entry per
interface (MAC, IP, hostname, lease time, router and name servers as the
Hardware declares them), and the rules that chainload iPXE and point it at
tinkops's machine-facing listener (tink-server --boot-listen, reached at
--boot-url). Only the fleet's MACs get boot rules: other clients on the
network are answered as before.

The fleet comes from the server (--server), or from a repository directory
(--repo DIR) for a DHCP configuration kept in Git beside the hardware.

Firmware without iPXE first gets undionly.kpxe (BIOS) or ipxe.efi (UEFI x86-64)
over dnsmasq's own TFTP from --tftp-root (Debian's ipxe package installs them
in /usr/lib/ipxe); iPXE then fetches /ipxe/chain.ipxe, which chains to the
machine's own script by its MAC.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "dnsmasq" {
				return fmt.Errorf("--format %q: want dnsmasq (docs/provision.md shows ISC Kea)", format)
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
			return writeDnsmasq(cmd.OutOrStdout(), hws, strings.TrimRight(bootURL, "/"), tftpRoot, from)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "dnsmasq", "configuration format: dnsmasq")
	f.StringVar(&bootURL, "boot-url", "", "tinkops's machine-facing listener as machines reach it (tink-server --boot-listen), such as http://10.0.0.1:8080")
	f.StringVar(&repo, "repo", "", "read the fleet from this repository directory instead of the server")
	f.StringVar(&tftpRoot, "tftp-root", "/usr/lib/ipxe", "directory dnsmasq's TFTP serves the iPXE binaries (undionly.kpxe, ipxe.efi) from")
	return cmd
}

// dnsName is a hostname dnsmasq accepts: letters, digits and hyphens in
// dot-separated labels.
var dnsName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// writeDnsmasq writes the dnsmasq configuration for hws. Every value
// comes from a validated Hardware, and is checked again for what dnsmasq's
// syntax cannot carry (a comma, a space), so the file never says more
// than the Hardware does.
func writeDnsmasq(w io.Writer, hws []*schema.Hardware, bootURL, tftpRoot, from string) error {
	sort.Slice(hws, func(i, j int) bool {
		a, b := hws[i].Metadata, hws[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var b strings.Builder
	var errs []error
	hosts := 0
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
			at := fmt.Sprintf("hardware %s: interfaces[%d]", name, i)
			tag := fmt.Sprintf("hw%d", hosts)
			fields := []string{d.MAC, "set:tinkops", "set:" + tag}
			if d.IP != nil && d.IP.Address != "" {
				a, err := netip.ParseAddr(d.IP.Address)
				if err != nil || !a.Is4() {
					errs = append(errs, fmt.Errorf("%s.dhcp.ip.address %q: dnsmasq host entries take IPv4 addresses", at, d.IP.Address))
					continue
				}
				fields = append(fields, a.String())
			}
			if d.Hostname != "" {
				if !dnsName.MatchString(d.Hostname) {
					errs = append(errs, fmt.Errorf("%s.dhcp.hostname %q: not a hostname dnsmasq accepts (letters, digits, hyphens, dots)", at, d.Hostname))
					continue
				}
				fields = append(fields, d.Hostname)
			}
			if d.LeaseTime > 0 {
				fields = append(fields, fmt.Sprintf("%ds", max(d.LeaseTime, 120)))
			}
			fmt.Fprintf(&b, "\n# %s\ndhcp-host=%s\n", at, strings.Join(fields, ","))
			if d.IP != nil && d.IP.Gateway != "" {
				if err := checkIPv4(d.IP.Gateway); err != nil {
					errs = append(errs, fmt.Errorf("%s.dhcp.ip.gateway: %v", at, err))
				} else {
					fmt.Fprintf(&b, "dhcp-option=tag:%s,option:router,%s\n", tag, d.IP.Gateway)
				}
			}
			var dns []string
			for _, ns := range d.NameServers {
				if err := checkIPv4(ns); err != nil {
					errs = append(errs, fmt.Errorf("%s.dhcp.name_servers: %v", at, err))
					continue
				}
				dns = append(dns, ns)
			}
			if len(dns) > 0 {
				fmt.Fprintf(&b, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, strings.Join(dns, ","))
			}
			hosts++
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func checkIPv4(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("%q is not an IPv4 address", s)
	}
	return nil
}
