package demo_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemo runs `make demo`'s script end to end with freshly built
// binaries: two IPMI simulators, tink-server on a Git repository of its
// own, a worker per machine. It must exit 0, tell the story (the netboot
// sequence, both runs to SUCCESS, the broken commit rejected with its
// file:line while the last good revision stays applied, the fix applied)
// and leave no process or directory behind.
func TestDemo(t *testing.T) {
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "../../cmd/tink", "../../cmd/tink-server", "../../cmd/tink-worker")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	tmp := t.TempDir()
	demo := exec.CommandContext(ctx, "bash", "demo.sh")
	demo.Env = append(os.Environ(), "BIN="+bin, "TMPDIR="+tmp, "TINK_SERVER=", "TINK_TOKEN=")
	out, err = demo.CombinedOutput()
	text := string(out)
	require.NoError(t, err, "%s", text)

	for _, want := range []string{
		"==> Two machines, each with an IPMI BMC",
		"  set power 0\n  set boot pxe\n  set power 1\n",
		"ok: 2 hardware, 1 template, 2 workflows",
		"PREPARING -> RUNNING: boot actions done",
		"Workflow/provision-node-01#1: power off: ok via ipmitool",
		"Workflow/provision-node-01#1: boot device pxe once: ok via ipmitool",
		"RUNNING -> SUCCESS: every action succeeded; PXE no longer allowed",
		`"allowPXE": false`,
		`hardware/node-02.yaml:9:`,
		`spec.interfaces[0].dhcp.mac: "52:54:00:00:00:0z" is not a MAC address`,
		"(tink sync exited 1: the revision has errors, nothing of it was applied)",
		"==> Done",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "\x1b[", "no terminal escape codes when the output is not a terminal")
	require.Contains(t, text, "not applied: ", "tink sync shows the status of the broken revision")
	require.Regexp(t, `provision-node-01\s+demo-provision\s+node-01\s+1\s+SUCCESS`, text)
	require.Regexp(t, `provision-node-02\s+demo-provision\s+node-02\s+1\s+SUCCESS`, text)
	// The broken commit left the good revision applied; the fix moved it on.
	broken := text[strings.Index(text, "A broken commit"):]
	applied := func(s string) string {
		i := strings.Index(s, "Applied:")
		require.GreaterOrEqual(t, i, 0, s)
		return strings.Fields(s[i:])[1]
	}
	first := applied(text[strings.Index(text, "Provision node-01 and node-02"):])
	require.Equal(t, first, applied(broken), "the last good revision stays applied")
	require.Contains(t, broken, "Attempted:")
	require.NotEqual(t, first, applied(broken[strings.Index(broken, "==> The fix"):]), "the fix is applied")

	// Nothing left behind.
	left, err := filepath.Glob(filepath.Join(tmp, "tinkops-demo.*"))
	require.NoError(t, err)
	require.Empty(t, left)
	require.Empty(t, processesUnder(t, bin), "processes of the demo still run")
	require.Empty(t, processesUnder(t, tmp), "ipmi_sim of the demo still runs")
}

// processesUnder lists the command lines of running processes that name
// dir, read from /proc (no ps on a minimal machine).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	require.NotEmpty(t, cmdlines, "no /proc")
	var out []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended meanwhile
		}
		if line := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(line, dir) {
			out = append(out, line)
		}
	}
	return out
}
