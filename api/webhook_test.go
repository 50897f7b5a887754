package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/state"
)

func postHook(t *testing.T, s *apitest.Server, headers map[string]string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/webhooks/git", bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestWebhook: a signed GitHub push or a GitLab push with the right token
// triggers a fetch; a wrong signature gets 401 and an event, and triggers
// nothing.
func TestWebhook(t *testing.T) {
	var fetches atomic.Int32
	const secret = "hook-secret-123"
	s := apitest.MustRunServer(t, apitest.WithTokens(), apitest.WithWebhook(secret, func() { fetches.Add(1) }))
	body := []byte(`{"ref":"refs/heads/main","after":"abc"}`)

	resp := postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, body)}, body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, int32(1), fetches.Load())

	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("wrong", body)}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "push"}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "unsigned")
	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, body)}, append(body, ' '))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a changed body")
	require.Equal(t, int32(1), fetches.Load(), "nothing triggered by bad deliveries")

	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(secret, body)}, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, int32(1), fetches.Load(), "a ping fetches nothing")

	resp = postHook(t, s, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, int32(2), fetches.Load())
	resp = postHook(t, s, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	evs, err := s.Store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventError}}})
	require.NoError(t, err)
	require.Len(t, evs, 4)
	require.Contains(t, evs[0].Message, "refused: missing or wrong signature")
	for _, e := range evs {
		require.NotContains(t, e.Message, secret)
	}
}

func TestWebhookOff(t *testing.T) {
	s := apitest.MustRunServer(t)
	resp := postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("x", nil)}, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}
