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
	"strings"
	"sync"
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
	post := func(sig, delivery string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+m.Addr()+"/v1/webhooks/git", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-GitHub-Delivery", delivery)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	mac := hmac.New(sha256.New, []byte("wrong"))
	mac.Write(body)
	require.Equal(t, http.StatusUnauthorized, post("sha256="+hex.EncodeToString(mac.Sum(nil)), "d-1"))
	time.Sleep(300 * time.Millisecond)
	st, err = m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "main@sha1:"+first, st.LastAppliedRevision, "a bad signature triggers nothing")

	mac = hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	require.Equal(t, http.StatusAccepted, post("sha256="+hex.EncodeToString(mac.Sum(nil)), "d-2"))
	require.Eventually(t, func() bool {
		st, err := m.Store.SyncStatus(ctx)
		return err == nil && st.LastAppliedRevision == "main@sha1:"+second
	}, 10*time.Second, 10*time.Millisecond)
	_, err = m.Store.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-04"})
	require.NoError(t, err)
}

// TestWebhookFloodKeepsTheAuditTrail: with an event log that keeps 40
// events, 2,000 unsigned webhook requests leave every earlier event in
// place: they are counted in tink_webhook_refused_total and summed up in
// one event. A signed delivery sent again (same X-GitHub-Delivery) is
// refused, and so is a signature in uppercase hex.
func TestWebhookFloodKeepsTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	const secret = "s3cret-hook"
	t.Setenv("TINK_WEBHOOK_SECRET", secret)
	m := MustRunMain(t, copyDir(t, filepath.Join("..", "..", "examples", "repo")), "--max-events", "40")
	waitReady(t, m)
	before, err := m.Store.Events(ctx, state.EventQuery{})
	require.NoError(t, err)
	require.NotEmpty(t, before)
	require.Less(t, len(before), 30, "the test needs room for a few more events")

	url := "http://" + m.Addr() + "/v1/webhooks/git"
	post := func(body []byte, headers map[string]string) int {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	codes := make(chan int, 2000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","n":%d}`, w*250+i))
				codes <- post(body, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)})
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		require.Equal(t, http.StatusUnauthorized, c)
	}

	_, err = m.Store.CompactEvents(ctx)
	require.NoError(t, err)
	after, err := m.Store.Events(ctx, state.EventQuery{})
	require.NoError(t, err)
	require.Equal(t, before, after[:len(before)], "events written before the flood are still there")
	var refusals []state.Event
	for _, ev := range after[len(before):] {
		if ev.Type == state.EventError {
			refusals = append(refusals, ev)
		}
	}
	require.Len(t, refusals, 1, "one summary for the whole flood")
	require.Contains(t, refusals[0].Message, "1 webhook request(s) refused since")

	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	hook := func(sig, delivery string) map[string]string {
		return map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sig, "X-GitHub-Delivery": delivery}
	}
	require.Equal(t, http.StatusUnauthorized, post(body, hook("sha256="+strings.ToUpper(sig), "d-upper")), "uppercase hex")
	require.Equal(t, http.StatusAccepted, post(body, hook("sha256="+sig, "d-1")))
	require.Equal(t, http.StatusConflict, post(body, hook("sha256="+sig, "d-1")), "a replay")

	m2 := scrape(t, m)
	require.Equal(t, 2001.0, m2.value("tink_webhook_refused_total", "reason", "signature"))
	require.Equal(t, 1.0, m2.value("tink_webhook_refused_total", "reason", "replay"))
}
