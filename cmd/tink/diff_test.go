package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
)

// TestDiff: tink diff plans a working tree against the live server with
// the sync's own code: exit 1 with the consequences when it changes
// things, 0 when it does not, 2 with every error when the tree is broken;
// Markdown and JSON for pull requests.
func TestDiff(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	viewer := s.Tokens["viewer"]
	repo := filepath.Join("..", "..", "examples", "repo")

	code, out, errOut := tinkAt(t, s, "--token", viewer, "diff", repo)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, out, "Plan for diff@sha256:")
	require.Contains(t, out, ": 7 to create, 0 to update, 0 to delete, 0 unchanged")
	require.Contains(t, out, "  - workflow provision-node-01 will start: node-01 will be powered off, set to PXE once (EFI), powered on, then run template basic-provision (2 actions)")
	require.Contains(t, out, "create Hardware/node-01 (hardware/node-01.yaml)")

	code, out, _ = tinkAt(t, s, "--token", viewer, "diff", repo, "--format", "markdown", "--revision", "pr-42")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(out, "### tinkops plan for `pr-42`\n\n**What happens when this merges:**\n\n- workflow provision-node-01 will start"), out)

	code, out, _ = tinkAt(t, s, "--token", viewer, "diff", repo, "-o", "json")
	require.Equal(t, 1, code)
	var res client.PlanResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Changes, 7)
	require.False(t, res.Empty)
	code, out, _ = tinkAt(t, s, "--token", viewer, "diff", repo, "-o", "yaml")
	require.Equal(t, 1, code)
	require.Contains(t, out, "empty: false\n")

	// Apply the same tree: the diff is empty.
	_, err := reconciler.New(reconciler.Config{Store: s.Store}).Sync(context.Background(), reconciler.Snapshot{Revision: "r1", FS: os.DirFS(repo)})
	require.NoError(t, err)
	code, out, _ = tinkAt(t, s, "--token", viewer, "diff", repo)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, ": 0 to create, 0 to update, 0 to delete, 7 unchanged")

	// A broken tree: every error, exit 2.
	code, out, errOut = tinkAt(t, s, "--token", viewer, "diff", filepath.Join("..", "..", "schema", "testdata", "invalid", "bad-mac"))
	require.Equal(t, 2, code)
	require.Equal(t, "hardware/node-02.yaml:15:14: spec.interfaces[0].dhcp.mac: \"zz:11\" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)\n", out)
	require.Equal(t, "1 error(s)\n", errOut)

	// Without a token: refused, exit 2.
	code, _, errOut = tinkAt(t, s, "diff", repo)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "needs an API token")
}
