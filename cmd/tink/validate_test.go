package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func runTink(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runTinkIn(t, strings.NewReader(""), args...)
}

func runTinkIn(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateExampleRepo(t *testing.T) {
	code, out, _ := runTink(t, "validate", filepath.Join("..", "..", "examples", "repo"))
	require.Equal(t, 0, code)
	require.Equal(t, "ok: 3 hardware, 2 templates, 2 workflows\n", out)
}

func TestValidateReportsEveryError(t *testing.T) {
	code, out, errOut := runTink(t, "validate", filepath.Join("..", "..", "schema", "testdata", "invalid", "bad-mac"))
	require.Equal(t, 1, code)
	require.Equal(t, "hardware/node-02.yaml:15:14: spec.interfaces[0].dhcp.mac: \"zz:11\" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)\n", out)
	require.Equal(t, "1 error(s)\n", errOut)
}

// TestValidateJSON: -o json (the one format flag of every command;
// --format is its alias) prints the document docs/cli.md describes.
func TestValidateJSON(t *testing.T) {
	code, out, _ := runTink(t, "validate", "-o", "json", filepath.Join("..", "..", "schema", "testdata", "invalid", "duplicate-ip"))
	require.Equal(t, 1, code)
	var res struct {
		Valid  bool
		Errors []struct {
			File    string
			Line    int
			Column  int
			Path    string
			Object  string
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.False(t, res.Valid)
	require.Len(t, res.Errors, 1)
	e := res.Errors[0]
	require.Equal(t, "hardware/node-02.yaml", e.File)
	require.Equal(t, 17, e.Line)
	require.Equal(t, 20, e.Column)
	require.Equal(t, "spec.interfaces[0].dhcp.ip.address", e.Path)
	require.Equal(t, "Hardware/node-02", e.Object)

	code, out, _ = runTink(t, "validate", "--format", "json", filepath.Join("..", "..", "examples", "repo"))
	require.Equal(t, 0, code)
	require.Contains(t, out, `"valid": true`)
	require.Contains(t, out, `"errors": []`)

	code, out, _ = runTink(t, "--format", "yaml", "validate", filepath.Join("..", "..", "examples", "repo"))
	require.Equal(t, 0, code)
	require.Contains(t, out, "valid: true\n")
}

func TestValidateUsage(t *testing.T) {
	code, _, errOut := runTink(t, "validate", "/does/not/exist")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "/does/not/exist")
	code, _, errOut = runTink(t, "validate", "--format", "xml", ".")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `-o must be text, json or yaml, got "xml"`)
}
