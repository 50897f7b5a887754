package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
)

// accepted runs a real DHCP server's configuration check on conf (written
// to a file named name): the tool must exit 0. A missing tool fails the
// test: .ci/run installs it.
func accepted(t *testing.T, pkg, name, conf, tool string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	require.NoError(t, err, "this test needs %s (apt-get install %s; .ci/run installs it)", tool, pkg)
	file := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(file, []byte(conf), 0o644))
	out, err := exec.Command(bin, append(args, file)...).CombinedOutput()
	require.NoError(t, err, "%s: %s\n%s", tool, out, conf)
	return string(out)
}

// dnsmasqAccepts checks conf with dnsmasq --test.
func dnsmasqAccepts(t *testing.T, conf string) {
	t.Helper()
	require.Contains(t, accepted(t, "dnsmasq", "tinkops.conf", conf, "dnsmasq", "--test", "-C"), "syntax check OK")
}

// fleetServer runs a server holding node-01, node-02, ... at the given
// addresses (MACs 52:54:00:10:00:01, ...).
func fleetServer(t *testing.T, ips ...string) *apitest.Server {
	t.Helper()
	s := apitest.MustRunServer(t)
	var docs []string
	for i, ip := range ips {
		docs = append(docs, apitest.HardwareYAML(fmt.Sprintf("node-%02d", i+1), fmt.Sprintf("52:54:00:10:00:%02d", i+1), ip))
	}
	code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", writeFile(t, "fleet.yaml", strings.Join(docs, "---\n")))
	require.Equal(t, 0, code, errOut)
	return s
}

func TestDHCPDnsmasq(t *testing.T) {
	s := fleetServer(t, "10.10.1.11", "10.10.1.12")
	code, out, errOut := tinkAt(t, s, "dhcp", "--format", "dnsmasq", "--boot-url", "http://10.10.1.1:8080/")
	require.Equal(t, 0, code, errOut)
	dnsmasqAccepts(t, out)
	require.Contains(t, out, "# tinkops: DHCP for the fleet of server "+s.URL)
	require.Contains(t, out, "\ndhcp-boot=tag:tinkops,tag:ipxe,http://10.10.1.1:8080/ipxe/chain.ipxe\n")
	require.Contains(t, out, "\ndhcp-boot=tag:tinkops,tag:!ipxe,tag:!efi64,undionly.kpxe\n")
	require.Contains(t, out, "\ndhcp-host=52:54:00:10:00:01,set:tinkops,set:hw0,10.10.1.11,node-01\ndhcp-option=tag:hw0,option:router,10.10.1.1\n")
	require.Contains(t, out, "\ndhcp-host=52:54:00:10:00:02,set:tinkops,set:hw1,10.10.1.12,node-02\n")

	t.Run("FromRepository", func(t *testing.T) {
		code, out, errOut := runTink(t, "dhcp", "--repo", filepath.Join("..", "..", "examples", "repo"), "--boot-url", "http://10.10.1.1:8080", "--tftp-root", "/srv/tftp")
		require.Equal(t, 0, code, errOut)
		dnsmasqAccepts(t, out)
		require.Contains(t, out, "\ntftp-root=/srv/tftp\n")
		require.Contains(t, out, "\ndhcp-host=52:54:00:10:00:03,set:tinkops,set:hw2,10.10.1.13,node-03,86400s\n")
		require.Contains(t, out, "\ndhcp-option=tag:hw2,option:dns-server,1.1.1.1\n")
		require.Equal(t, 3, strings.Count(out, "dhcp-host="))
	})

	t.Run("Errors", func(t *testing.T) {
		code, _, errOut := tinkAt(t, s, "dhcp")
		require.Equal(t, 2, code)
		require.Equal(t, "tink: --boot-url \"\": want tinkops's machine-facing URL, such as http://10.0.0.1:8080 (tink-server --boot-listen)\n", errOut)
		code, _, errOut = tinkAt(t, s, "dhcp", "--boot-url", "http://x", "--format", "isc")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, `--format "isc": want dnsmasq or kea`)

		bad := writeFile(t, "bad.yaml", strings.Replace(apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"), "hostname: node-03", "hostname: node_03", 1))
		code, _, errOut = tinkAt(t, s, "hardware", "push", "--file", bad)
		require.Equal(t, 0, code, errOut)
		code, _, errOut = tinkAt(t, s, "dhcp", "--boot-url", "http://10.10.1.1:8080")
		require.Equal(t, 2, code)
		require.Equal(t, "tink: hardware node-03: interfaces[0].dhcp.hostname: \"node_03\" is not a hostname DHCP servers accept (letters, digits, hyphens, dots)\n", errOut)
	})
}

// keaAccepts checks conf with kea-dhcp4 -t.
func keaAccepts(t *testing.T, conf string) {
	t.Helper()
	accepted(t, "kea-dhcp4-server", "kea-dhcp4.conf", conf, "kea-dhcp4", "-t")
}

func TestDHCPKea(t *testing.T) {
	s := fleetServer(t, "10.10.1.11", "10.10.1.12", "10.20.0.13")
	code, out, errOut := tinkAt(t, s, "dhcp", "--format", "kea", "--boot-url", "http://10.10.1.1:8080")
	require.Equal(t, 0, code, errOut)
	keaAccepts(t, out)
	require.Contains(t, out, "// tinkops: DHCP for the fleet of server "+s.URL)
	doc := out[strings.Index(out, "{"):]
	var cfg struct {
		Dhcp4 struct {
			Classes []map[string]string `json:"client-classes"`
			Subnets []struct {
				ID           int    `json:"id"`
				Subnet       string `json:"subnet"`
				Reservations []struct {
					HW, IP, Host string
				} `json:"reservations"`
			} `json:"subnet4"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(doc), &cfg))
	require.Equal(t, "http://10.10.1.1:8080/ipxe/chain.ipxe", cfg.Dhcp4.Classes[0]["boot-file-name"])
	require.Equal(t, "10.10.1.1", cfg.Dhcp4.Classes[1]["next-server"], "the TFTP server defaults to the boot URL's address")
	require.Len(t, cfg.Dhcp4.Subnets, 2)
	require.Equal(t, "10.10.1.0/24", cfg.Dhcp4.Subnets[0].Subnet)
	require.Len(t, cfg.Dhcp4.Subnets[0].Reservations, 2)
	require.Equal(t, "10.20.0.0/24", cfg.Dhcp4.Subnets[1].Subnet)
	require.Contains(t, doc, `"hw-address": "52:54:00:10:00:03",
            "ip-address": "10.20.0.13",
            "hostname": "node-03",`)

	code, _, errOut = tinkAt(t, s, "dhcp", "--format", "kea", "--boot-url", "http://boot.example.com:8080")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `--tftp-server: "" is not an IPv4 address`)
}
