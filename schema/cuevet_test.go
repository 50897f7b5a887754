package schema_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	cuecmd "cuelang.org/go/cmd/cue/cmd"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// cueVet runs the stock `cue vet` command (cuelang.org/go's own cmd/cue, in
// process) with the embedded definitions, exactly as an operator's CI would:
// cue vet tink.cue FILES... -d DEF.
func cueVet(t *testing.T, def string, files ...string) (string, error) {
	t.Helper()
	defs := filepath.Join(t.TempDir(), "tink.cue")
	require.NoError(t, os.WriteFile(defs, schema.Definitions(), 0o644))
	args := append([]string{"vet", defs}, files...)
	args = append(args, "-d", def)
	c, err := cuecmd.New(args)
	require.NoError(t, err)
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	err = c.Run(context.Background())
	if err != nil {
		// cmd/cue's main prints the returned error; so do we.
		out.WriteString(err.Error())
	}
	return out.String(), err
}

func TestCUEVetExamples(t *testing.T) {
	repo := filepath.Join("..", "examples", "repo")
	glob := func(p string) []string {
		m, err := filepath.Glob(filepath.Join(repo, p))
		require.NoError(t, err)
		require.NotEmpty(t, m, p)
		return m
	}
	cases := []struct {
		def   string
		files []string
	}{
		{"#Hardware", glob("hardware/*.yaml")},
		{"#Workflow", glob("workflows/*.yaml")},
		{"#Template", []string{filepath.Join(repo, "templates", "ubuntu-image.yaml")}},
		{"#TemplateDocument", []string{filepath.Join(repo, "templates", "basic-provision.yaml")}},
		{"#Object", glob("hardware/*.yaml")},
	}
	for _, c := range cases {
		t.Run(c.def, func(t *testing.T) {
			out, err := cueVet(t, c.def, c.files...)
			require.NoError(t, err, out)
		})
	}
}

// TestCUEVetFindsMistakes shows the vet above can fail: the same command
// rejects a hardware file with a bad MAC and names the field.
func TestCUEVetFindsMistakes(t *testing.T) {
	out, err := cueVet(t, "#Hardware", filepath.Join("testdata", "invalid", "bad-mac", "hardware", "node-02.yaml"))
	require.Error(t, err)
	require.Contains(t, out, "spec.interfaces.0.dhcp.mac")
	require.Contains(t, out, `"zz:11"`)
}
