package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
)

// dnsmasqAccepts runs the real dnsmasq's syntax check on conf. A missing
// dnsmasq fails the test: .ci/run installs it.
func dnsmasqAccepts(t *testing.T, conf string) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	require.NoError(t, err, "this test needs dnsmasq (apt-get install dnsmasq; .ci/run installs it)")
	file := filepath.Join(t.TempDir(), "tinkops.conf")
	require.NoError(t, os.WriteFile(file, []byte(conf), 0o644))
	out, err := exec.Command(bin, "--test", "--conf-file="+file).CombinedOutput()
	require.NoError(t, err, "dnsmasq --test: %s\n%s", out, conf)
	require.Contains(t, string(out), "syntax check OK")
}

func TestDHCPDnsmasq(t *testing.T) {
	s := apitest.MustRunServer(t)
	fleet := writeFile(t, "fleet.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")+"---\n"+apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12"))
	code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", fleet)
	require.Equal(t, 0, code, errOut)

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
		require.Contains(t, errOut, `--format "isc": want dnsmasq`)

		bad := writeFile(t, "bad.yaml", strings.Replace(apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"), "hostname: node-03", "hostname: node_03", 1))
		code, _, errOut = tinkAt(t, s, "hardware", "push", "--file", bad)
		require.Equal(t, 0, code, errOut)
		code, _, errOut = tinkAt(t, s, "dhcp", "--boot-url", "http://10.10.1.1:8080")
		require.Equal(t, 2, code)
		require.Equal(t, "tink: hardware node-03: interfaces[0].dhcp.hostname \"node_03\": not a hostname dnsmasq accepts (letters, digits, hyphens, dots)\n", errOut)
	})
}
