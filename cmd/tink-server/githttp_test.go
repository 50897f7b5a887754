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

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// TestGitHTTPBasicAuth: tink-server follows a repository served by git
// http-backend behind basic auth, with the credentials in --git-auth-dir:
// a valid commit applies, an invalid one is attempted but not applied, the
// fix applies; wrong credentials show in the source's status and never in
// the sync status or events as text.
func TestGitHTTPBasicAuth(t *testing.T) {
	ctx := context.Background()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for _, name := range []string{"hardware/node-01.yaml", "hardware/node-02.yaml", "templates/basic-provision.yaml", "workflows/provision-node-01.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "repo", name))
		require.NoError(t, err)
		files[name] = string(b)
	}
	first := repo.Commit("fleet", files)
	srv := gittest.ServeHTTP(t, repo.Base, "fleet-bot", "pa55word-xyz", false)
	auth := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(auth, "username"), []byte("fleet-bot"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(auth, "password"), []byte("pa55word-xyz"), 0o600))

	m := MustRunMain(t, srv.URL+repo.Name, "--git-auth-dir", auth, "--poll-interval", "200ms")
	waitReady(t, m)
	applied := func(rev string) func() bool {
		return func() bool {
			st, err := m.Store.SyncStatus(ctx)
			return err == nil && st.LastAppliedRevision == rev
		}
	}
	require.Eventually(t, applied("main@sha1:"+first), 10*time.Second, 20*time.Millisecond)

	bad := repo.Commit("typo", map[string]string{"hardware/node-02.yaml": strings.Replace(files["hardware/node-02.yaml"], "kind: Hardware", "kind: Hardwar", 1)})
	require.Eventually(t, func() bool {
		st, err := m.Store.SyncStatus(ctx)
		return err == nil && st.LastAttemptedRevision == "main@sha1:"+bad && len(st.Errors) == 1
	}, 10*time.Second, 20*time.Millisecond)
	st, err := m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+first, st.LastAppliedRevision)

	fix := repo.Commit("fix", map[string]string{"hardware/node-02.yaml": files["hardware/node-02.yaml"]})
	require.Eventually(t, applied("main@sha1:"+fix), 10*time.Second, 20*time.Millisecond)

	// Rotate the password on disk to a wrong one: the source reports it.
	require.NoError(t, os.WriteFile(filepath.Join(auth, "password"), []byte("wrong-pass-999"), 0o600))
	require.Eventually(t, func() bool { return m.Source.Status().Failures > 0 }, 10*time.Second, 20*time.Millisecond)
	status := m.Source.Status()
	require.NotContains(t, status.LastError, "wrong-pass-999")
	require.NotContains(t, status.Source, "fleet-bot:")

	// An operator sees it in tink status (GET /v1/status), without the
	// secret, while the last good revision stays applied.
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	api, err := c.Status(ctx)
	require.NoError(t, err)
	require.NotNil(t, api.Source)
	require.Positive(t, api.Source.Failures)
	require.Contains(t, api.Source.LastError, "authentication")
	require.Equal(t, "branch main", api.Source.Ref)
	require.Equal(t, "main@sha1:"+fix, api.Sync.LastAppliedRevision)
	raw, err := json.Marshal(api)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "wrong-pass-999")
	require.NotContains(t, string(raw), "pa55word-xyz")
	require.NotContains(t, string(raw), "fleet-bot:")
}
