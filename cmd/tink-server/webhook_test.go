package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/state"
)

// TestWebhookPushApplies: with a poll interval of an hour, a signed push
// webhook makes the server fetch and apply the commit at once; a badly
// signed one does not.
func TestWebhookPushApplies(t *testing.T) {
	ctx := context.Background()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for _, name := range []string{"hardware/node-01.yaml", "hardware/node-02.yaml", "hardware/node-03.yaml", "templates/basic-provision.yaml", "templates/ubuntu-image.yaml", "workflows/provision-node-01.yaml", "workflows/ubuntu-node-02.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "repo", name))
		require.NoError(t, err)
		files[name] = string(b)
	}
	first := repo.Commit("fleet", files)
	daemon := gittest.ServeDaemon(t, repo.Base)
	const secret = "s3cret-hook"
	t.Setenv("TINK_WEBHOOK_SECRET", secret)
	m := MustRunMain(t, daemon.URL+repo.Name, "--poll-interval", "1h")
	waitReady(t, m)
	st, err := m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+first, st.LastAppliedRevision)

	second := repo.Commit("add node-04", map[string]string{"hardware/node-04.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-04}
spec: {interfaces: [{dhcp: {mac: "52:54:00:10:00:04"}}]}
`})
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, second))
	post := func(sig string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+m.Addr()+"/v1/webhooks/git", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	mac := hmac.New(sha256.New, []byte("wrong"))
	mac.Write(body)
	require.Equal(t, http.StatusUnauthorized, post("sha256="+hex.EncodeToString(mac.Sum(nil))))
	time.Sleep(300 * time.Millisecond)
	st, err = m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+first, st.LastAppliedRevision, "a bad signature triggers nothing")

	mac = hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	require.Equal(t, http.StatusAccepted, post("sha256="+hex.EncodeToString(mac.Sum(nil))))
	require.Eventually(t, func() bool {
		st, err := m.Store.SyncStatus(ctx)
		return err == nil && st.LastAppliedRevision == "main@sha1:"+second
	}, 10*time.Second, 10*time.Millisecond)
	_, err = m.Store.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.NoError(t, err)
}
