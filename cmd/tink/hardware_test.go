package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// tinkAt runs tink against a server.
func tinkAt(t *testing.T, s *apitest.Server, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runTink(t, append([]string{"--server", s.URL}, args...)...)
}

// tinkAtIn runs tink against a server with standard input.
func tinkAtIn(t *testing.T, s *apitest.Server, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runTinkIn(t, strings.NewReader(stdin), append([]string{"--server", s.URL}, args...)...)
}

// writeFile writes a fixture into a temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// readFile reads a fixture back.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestHardwareCommands(t *testing.T) {
	s := apitest.MustRunServer(t)
	two := writeFile(t, "fleet.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")+"---\n"+apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12"))

	code, out, errOut := tinkAt(t, s, "hardware", "push", "--file", two)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "hardware/node-01 created\nhardware/node-02 created\n", out)

	code, out, _ = tinkAt(t, s, "hardware", "push", "-f", two)
	require.Equal(t, 0, code)
	require.Equal(t, "hardware/node-01 unchanged\nhardware/node-02 unchanged\n", out)

	code, out, errOut = tinkAtIn(t, s, apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.22"), "hardware", "push", "--file", "-")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "hardware/node-02 updated\n", out)

	t.Run("List", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "hardware", "list")
		require.Equal(t, 0, code)
		require.Equal(t, strings.Join([]string{
			"NAME      MAC                 IP           HOSTNAME   SOURCE   STATE   POWER",
			"node-01   52:54:00:10:00:01   10.10.1.11   node-01    api      -       -",
			"node-02   52:54:00:10:00:02   10.10.1.22   node-02    api      -       -",
		}, "\n")+"\n", out)

		code, out, _ = tinkAt(t, s, "hardware", "list", "-o", "json")
		require.Equal(t, 0, code)
		var list client.List
		require.NoError(t, json.Unmarshal([]byte(out), &list))
		require.Equal(t, "HardwareList", list.Kind)
		require.Len(t, list.Items, 2)

		code, out, _ = tinkAt(t, s, "hardware", "list", "-o", "yaml", "-l", "rack=r1")
		require.Equal(t, 0, code)
		require.Contains(t, out, "kind: HardwareList\n")
		require.Contains(t, out, "name: node-02\n")

		code, out, _ = tinkAt(t, s, "hardware", "list", "-l", "rack=r9")
		require.Equal(t, 0, code)
		require.Equal(t, "NAME   MAC   IP   HOSTNAME   SOURCE   STATE   POWER\n", out)
	})

	t.Run("Events", func(t *testing.T) {
		code, out, errOut := tinkAt(t, s, "hardware", "events", "node-02")
		require.Equal(t, 0, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2, out)
		require.Contains(t, lines[0], "created")
		require.Contains(t, lines[1], "updated")
		require.True(t, strings.HasSuffix(lines[1], "[api:anonymous]"), "an API change names the token: %s", lines[1])
	})

	t.Run("Get", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "hardware", "get", "node-01")
		require.Equal(t, 0, code)
		require.Contains(t, out, "node-01   52:54:00:10:00:01   10.10.1.11")
		code, out, _ = tinkAt(t, s, "hw", "get", "node-01", "-o", "json")
		require.Equal(t, 0, code)
		var o client.Object
		require.NoError(t, json.Unmarshal([]byte(out), &o))
		require.Equal(t, "node-01", o.Metadata.Name)
		require.Equal(t, "api", o.Status.Source)

		code, out, errOut := tinkAt(t, s, "hardware", "get", "nope")
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Equal(t, "tink: hardware nope not found\n", errOut)
	})

	t.Run("ErrInvalidFile", func(t *testing.T) {
		bad := writeFile(t, "bad.yaml", strings.Replace(apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"), `"52:54:00:10:00:03"`, `"zz"`, 1))
		code, out, errOut := tinkAt(t, s, "hardware", "push", "--file", bad)
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Equal(t, "bad.yaml:12:14: spec.interfaces[0].dhcp.mac: \"zz\" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)\ntink: bad.yaml has 1 error(s); nothing was sent\n", errOut)
	})

	t.Run("ErrServerRefuses", func(t *testing.T) {
		clash := writeFile(t, "clash.yaml", apitest.HardwareYAML("node-03", "52:54:00:10:00:01", "10.10.1.13"))
		code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", clash)
		require.Equal(t, 1, code)
		require.Equal(t, "tink: hardware/node-03: hardware node-03 clashes with the fleet: 1 problem\n  spec.interfaces[0].dhcp.mac: MAC 52:54:00:10:00:01 is already used by hardware node-01\n", errOut)
	})

	t.Run("ErrWrongKind", func(t *testing.T) {
		tmpl := writeFile(t, "t.yaml", apitest.TemplateYAML("t1"))
		code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", tmpl)
		require.Equal(t, 1, code)
		require.Equal(t, "tink: Template/t1 in t.yaml is not a hardware; nothing sent for it\n", errOut)
	})

	t.Run("Delete", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "hardware", "delete", "node-02")
		require.Equal(t, 0, code)
		require.Equal(t, "hardware/node-02 deleted\n", out)
		code, _, errOut := tinkAt(t, s, "hardware", "delete", "node-02")
		require.Equal(t, 1, code)
		require.Equal(t, "tink: hardware node-02 not found\n", errOut)
	})

	t.Run("GitManaged", func(t *testing.T) {
		s.PutGit(t, "hardware/node-05.yaml", apitest.HardwareYAML("node-05", "52:54:00:10:00:05", "10.10.1.15"))
		f := writeFile(t, "n5.yaml", apitest.HardwareYAML("node-05", "52:54:00:10:00:05", "10.10.1.55"))
		code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", f)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "tink: hardware/node-05: managed by Git (hardware/node-05.yaml at main@sha1:")
		code, out, errOut := tinkAt(t, s, "hardware", "push", "--file", f, "--force", "--reason", "NIC swap")
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "hardware/node-05 updated\n", out)
		code, out, _ = tinkAt(t, s, "hardware", "list")
		require.Equal(t, 0, code)
		require.Contains(t, out, "node-05   52:54:00:10:00:05   10.10.1.55   node-05    git (overridden)")

		code, out, errOut = tinkAt(t, s, "hardware", "delete", "node-05", "--force")
		require.Equal(t, 0, code)
		require.Equal(t, "hardware/node-05 deleted\n", out)
		require.Contains(t, errOut, "warning: hardware node-05 is declared in Git")
	})
}

func TestCLIUsageAndConnection(t *testing.T) {
	s := apitest.MustRunServer(t)
	for _, args := range [][]string{
		{"hardware", "push"},
		{"hardware", "list", "-o", "xml"},
		{"hardware", "get"},
		{"workflow", "create", "--template", "t"},
		{"workflow", "create", "--template", "t", "--hardware", "h", "--map", "nokey"},
		{"hardware", "list", "--server", "ftp://x"},
	} {
		code, _, errOut := tinkAt(t, s, args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.NotEmpty(t, errOut)
	}
	code, _, errOut := runTink(t, "hardware", "list", "--server", "http://127.0.0.1:1")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut, "tink: cannot reach tink-server at http://127.0.0.1:1: "), errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"), "one line")
}

func TestCLITokens(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	code, _, errOut := tinkAt(t, s, "hardware", "list")
	require.Equal(t, 1, code)
	require.Equal(t, "tink: this server needs an API token: send Authorization: Bearer <token> (tink --token or TINK_TOKEN)\n", errOut)

	code, _, _ = tinkAt(t, s, "hardware", "list", "--token", s.Tokens["viewer"])
	require.Equal(t, 0, code)

	t.Setenv("TINK_TOKEN", s.Tokens["viewer"])
	t.Setenv("TINK_SERVER", s.URL)
	code, _, _ = runTink(t, "hardware", "list")
	require.Equal(t, 0, code, "TINK_SERVER and TINK_TOKEN")
	f := writeFile(t, "h.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))
	code, _, errOut = runTink(t, "hardware", "push", "--file", f)
	require.Equal(t, 1, code)
	require.Equal(t, "tink: hardware/node-01: token viewer has role viewer; POST /v1/hardware needs operator\n", errOut)
}

// TestHardwareGetAgentAttributes: what a Tinkerbell agent reported about
// its machine (kept on the hardware's status by tink-server) is shown by
// tink hardware get.
func TestHardwareGetAgentAttributes(t *testing.T) {
	s := apitest.MustRunServer(t)
	s.PutGit(t, "hardware/node-01.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))
	ctx := context.Background()
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-01"}
	o, err := s.Store.GetObject(ctx, key)
	require.NoError(t, err)
	o.Status = json.RawMessage(`{"agent":{"id":"52:54:00:10:00:01","reportedAt":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `","attributes":{
		"cpu":{"totalCores":8,"totalThreads":16,"processors":[{"vendor":"GenuineIntel","model":"Xeon"}]},
		"memory":{"total":"64GB"},"block":[{"name":"sda","size":"480GB","driveType":"SSD"}],
		"network":[{"name":"eth0","mac":"52:54:00:10:00:01","speed":"10Gbps"}],
		"product":{"vendor":"Acme","name":"R1","serialNumber":"S123"}}}}`)
	_, err = s.Store.PutObject(ctx, state.Worker("node-01"), o)
	require.NoError(t, err)

	code, out, errOut := tinkAt(t, s, "hardware", "get", "node-01")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "node-01   52:54:00:10:00:01   10.10.1.11")
	require.Regexp(t, `\nAgent:     52:54:00:10:00:01 \(attributes reported 1m0\ds ago\)\n`, out)
	for _, want := range []string{
		"CPU:       8 cores, 16 threads (1 x GenuineIntel Xeon)",
		"Memory:    64GB",
		"Disk:      sda 480GB SSD",
		"NIC:       eth0 52:54:00:10:00:01 10Gbps",
		"Product:   Acme R1 S123",
	} {
		require.Contains(t, out, want+"\n")
	}
	code, out, _ = tinkAt(t, s, "hardware", "get", "node-01", "-o", "json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"totalCores": 8`)
}
