package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestSyncPrintsEveryError: tink sync on a revision with two mistakes
// prints both with file:line:column, and the status (what stays in
// effect, why nothing was applied), and exits 1.
func TestSyncPrintsEveryError(t *testing.T) {
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	m := MustRunMain(t, repo)
	waitReady(t, m)
	tink := buildTink(t)
	applied := ""
	require.Eventually(t, func() bool {
		st, err := m.Store.SyncStatus(t.Context())
		applied = st.LastAppliedRevision
		return err == nil && applied != ""
	}, 10*time.Second, 20*time.Millisecond)

	writeFiles(t, repo, map[string]string{
		"hardware/bad-1.yaml": "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: bad-1}\nspec:\n  interfaces: [{dhcp: {mac: \"zz:11\"}}]\n",
		"hardware/bad-2.yaml": "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: bad-2}\nspec:\n  diskz: []\n",
	})
	cmd := exec.Command(tink, "--server", "http://"+m.Addr(), "sync")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
	require.Equal(t, 1, ee.ExitCode())
	out := stdout.String()
	require.Regexp(t, `^not applied: dir@sha256:[0-9a-f]+ has 2 error\(s\); `+applied+` stays in effect\n`, out)
	require.Contains(t, out, `  error: hardware/bad-1.yaml:5:29: spec.interfaces[0].dhcp.mac: "zz:11" is not a MAC address`)
	require.Contains(t, out, `  error: hardware/bad-2.yaml:5:3: spec.diskz: unknown field "diskz"`)
	require.Regexp(t, `(?m)^Last attempt:\s+stalled: the repository has 2 error\(s\)`, out)
	require.Regexp(t, `(?m)^Applied:\s+`+applied+`$`, out)
	require.Empty(t, stderr.String())

	st, err := m.Store.SyncStatus(t.Context())
	require.NoError(t, err)
	require.Equal(t, state.FailureStalled, st.Failure)
}
