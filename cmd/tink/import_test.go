package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var dump = filepath.Join("..", "..", "schema", "testdata", "tinkerbell", "dump", "cluster.yaml")

// TestImportRoundTrip: a dump imports into a directory that validates;
// importing it again changes nothing; a hand-edited file is kept unless
// --force.
func TestImportRoundTrip(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runTink(t, "import", dump, "--out", out)
	require.Equal(t, 0, code, stdout+stderr)
	require.Contains(t, stdout, "imported 4 objects")
	require.Contains(t, stdout, "4 written, 0 unchanged, 25 server-set fields dropped")
	require.Contains(t, stdout, "ok: the imported repository validates")

	hw := filepath.Join(out, "hardware", "tink-system", "machine3.yaml")
	b, err := os.ReadFile(hw)
	require.NoError(t, err)
	text := string(b)
	require.True(t, strings.HasPrefix(text, "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata:\n  name: machine3\n  namespace: tink-system\n"), text)
	for _, gone := range []string{"uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "status", "last-applied"} {
		require.NotContains(t, text, gone)
	}
	require.FileExists(t, filepath.Join(out, "bmc", "tink-system", "bmc-machine3.yaml"))
	require.FileExists(t, filepath.Join(out, "templates", "tink-system", "ubuntu-minimal.yaml"))
	require.FileExists(t, filepath.Join(out, "workflows", "tink-system", "machine3.yaml"))

	before := snapshot(t, out)
	code, stdout, _ = runTink(t, "import", dump, "--out", out)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "0 written, 4 unchanged")
	require.Equal(t, before, snapshot(t, out), "a second import changes nothing")

	edited := strings.Replace(text, "rack: r2", "rack: r9", 1)
	require.NoError(t, os.WriteFile(hw, []byte(edited), 0o644))
	code, _, stderr = runTink(t, "import", dump, "--out", out)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "not overwritten (changed since; use --force): "+filepath.Join("hardware", "tink-system", "machine3.yaml"))
	b, err = os.ReadFile(hw)
	require.NoError(t, err)
	require.Equal(t, edited, string(b), "the hand edit is kept")

	code, stdout, _ = runTink(t, "import", dump, "--out", out, "--force")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "1 written, 3 unchanged")
	b, err = os.ReadFile(hw)
	require.NoError(t, err)
	require.Equal(t, text, string(b))

	code, stdout, _ = runTink(t, "validate", out)
	require.Equal(t, 0, code)
	require.Equal(t, "ok: 1 hardware, 1 template, 1 workflow, 1 machine\n", stdout)
}

func TestImportFromStdinRejectsBrokenDump(t *testing.T) {
	out := t.TempDir()
	var stdin = strings.NewReader("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: x}\nspec: {interfaces: [{dhcp: {mac: nope}}]}\n")
	code, stdout, stderr := runTinkIn(t, stdin, "import", "-", "--out", out)
	require.Equal(t, 1, code)
	require.Contains(t, stdout, `<stdin>:4:34: spec.interfaces[0].dhcp.mac: "nope" is not a MAC address`)
	require.Contains(t, stderr, "nothing written")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = info.ModTime().String() + "\n" + string(b)
		return err
	}))
	return out
}

// TestTemplateRender: a template from the Tinkerbell corpus rendered for a
// machine gives the environment exactly as Tinkerbell renders it, values as
// text.
func TestTemplateRender(t *testing.T) {
	repo := filepath.Join("..", "..", "schema", "testdata", "tinkerbell")
	code, stdout, stderr := runTink(t, "template", "render", "ubuntu", "--hardware", "machine1", "-n", "tink-system", "--repo", repo)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		`worker: "52:54:00:12:34:01"`,
		"DEST_DISK: /dev/nvme0n1\n",
		"BLOCK_DEVICE: /dev/nvme0n1p1\n",
		`IMG_URL: "http://192.168.2.1:8080/ubuntu_20_04.raw.gz"`,
		"MODE: 0644\n",
		"COMPRESSED: true\n",
		`CMD_LINE: "grub-install --target=x86_64-efi"`,
		"- 192.168.2.21/24\n",
		"HOSTNAME: MACHINE1\n",
	} {
		require.Contains(t, stdout, want)
	}
	code, stdout, _ = runTink(t, "template", "render", "ubuntu", "--hardware", "nope", "-n", "tink-system", "--repo", repo)
	require.Equal(t, 1, code)
	require.Contains(t, stdout, `hardware "nope" is not declared in namespace tink-system`)
}
