package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// github returns the headers of a GitHub delivery: its event, signature
// and delivery id.
func github(event, sig, delivery string) map[string]string {
	return map[string]string{"X-GitHub-Event": event, "X-Hub-Signature-256": sig, "X-GitHub-Delivery": delivery}
}

// TestWebhook: a signed GitHub push or a GitLab push with the right token
// triggers a fetch; a wrong signature gets 401, is counted, and triggers
// nothing; the refusals make one summary event, not one each.
func TestWebhook(t *testing.T) {
	var fetches atomic.Int32
	const secret = "hook-secret-123"
	s := apitest.MustRunServer(t, apitest.WithTokens(), apitest.WithWebhook(secret, func() { fetches.Add(1) }))
	body := []byte(`{"ref":"refs/heads/main","after":"abc"}`)

	resp := postHook(t, s, github("push", sign(secret, body), "d-1"), body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, int32(1), fetches.Load())

	resp = postHook(t, s, github("push", sign("wrong", body), "d-2"), body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "push"}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "unsigned")
	resp = postHook(t, s, github("push", sign(secret, body), "d-3"), append(body, ' '))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a changed body")
	require.Equal(t, int32(1), fetches.Load(), "nothing triggered by bad deliveries")

	resp = postHook(t, s, github("ping", sign(secret, body), "d-4"), body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, int32(1), fetches.Load(), "a ping fetches nothing")

	resp = postHook(t, s, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, int32(2), fetches.Load())
	resp = postHook(t, s, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	evs, err := s.Store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventError}}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "four refusals within a minute: one summary event")
	require.Contains(t, evs[0].Message, "1 webhook request(s) refused since ")
	require.Contains(t, evs[0].Message, ": missing or wrong signature")
	for _, e := range evs {
		require.NotContains(t, e.Message, secret)
	}
	metrics := scrapeMetrics(t, s)
	require.Contains(t, metrics, `tink_webhook_refused_total{reason="signature"} 4`)
	require.Contains(t, metrics, `tink_webhook_refused_total{reason="replay"} 0`)
}

// TestWebhookNamesPushedHead: a verified push whose payload names its ref
// and a 40-digit head reaches Push with both; a payload without them (or
// with a head that is not a commit hash) is a plain trigger; a refused
// delivery reaches neither.
func TestWebhookNamesPushedHead(t *testing.T) {
	var fetches atomic.Int32
	var pushes []string
	var mu sync.Mutex
	const secret = "hook-secret-456"
	s := apitest.MustRunServer(t, apitest.WithTokens(), apitest.WithWebhook(secret, func() { fetches.Add(1) }),
		apitest.WithWebhookPush(func(ref, head string) {
			mu.Lock()
			pushes = append(pushes, ref+" "+head)
			mu.Unlock()
		}))
	head := strings.Repeat("abcdef0123", 4)
	body := []byte(`{"ref":"refs/heads/main","before":"` + strings.Repeat("f", 40) + `","after":"` + head + `"}`)
	resp := postHook(t, s, github("push", sign(secret, body), "p-1"), body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	resp = postHook(t, s, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	resp = postHook(t, s, github("push", sign("wrong", body), "p-2"), body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	mu.Lock()
	require.Equal(t, []string{"refs/heads/main " + head, "refs/heads/main " + head}, pushes)
	mu.Unlock()
	require.Zero(t, fetches.Load())

	for i, b := range []string{`{"ref":"refs/heads/main","after":"abc"}`, `{"after":"` + head + `"}`, `not json`, `{"ref":"refs/heads/main","after":"` + strings.ToUpper(head[:10]) + head[10:] + `"}`} {
		resp = postHook(t, s, github("push", sign(secret, []byte(b)), fmt.Sprintf("p-%d", i+3)), []byte(b))
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.Equal(t, int32(i+1), fetches.Load(), b)
	}
	require.Equal(t, int32(4), fetches.Load(), "payloads without a ref and a head trigger a plain fetch")
	mu.Lock()
	require.Len(t, pushes, 2)
	mu.Unlock()
}

// TestWebhookSignatureAsGitHubWritesIt: only sha256= and 64 lowercase hex
// digits; the same digits in uppercase are refused.
func TestWebhookSignatureAsGitHubWritesIt(t *testing.T) {
	var fetches atomic.Int32
	const secret = "hook-secret-123"
	s := apitest.MustRunServer(t, apitest.WithWebhook(secret, func() { fetches.Add(1) }))
	body := []byte(`{"ref":"refs/heads/main"}`)
	good := sign(secret, body)
	i := strings.IndexAny(good[7:], "abcdef")
	require.GreaterOrEqual(t, i, 0)
	letter := good[7+i : 8+i]
	for name, sig := range map[string]string{
		"Uppercase":   "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")),
		"MixedCase":   strings.Replace(good, letter, strings.ToUpper(letter), 1),
		"PrefixUpper": "SHA256=" + good[7:],
		"Short":       good[:len(good)-2],
	} {
		resp := postHook(t, s, github("push", sig, "d-"+name), body)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
	}
	require.Zero(t, fetches.Load())
	resp := postHook(t, s, github("push", good, "d-ok"), body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

// TestWebhookReplay: a delivery id seen before is refused (409) and
// triggers nothing, even with a valid signature; a delivery without an id
// is refused; the refusals are counted by reason.
func TestWebhookReplay(t *testing.T) {
	var fetches atomic.Int32
	const secret = "hook-secret-123"
	s := apitest.MustRunServer(t, apitest.WithWebhook(secret, func() { fetches.Add(1) }))
	body := []byte(`{"ref":"refs/heads/main"}`)
	resp := postHook(t, s, github("push", sign(secret, body), "72d3162e-cc78-11e3-81ab-4c9367dc0958"), body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	resp = postHook(t, s, github("push", sign(secret, body), "72d3162e-cc78-11e3-81ab-4c9367dc0958"), body)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	resp = postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, body)}, body)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no delivery id")
	require.Equal(t, int32(1), fetches.Load())
	resp = postHook(t, s, github("push", sign(secret, body), "72d3162e-cc78-11e3-81ab-4c9367dc0959"), body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "a new delivery")
	require.Equal(t, int32(2), fetches.Load())
	require.Contains(t, scrapeMetrics(t, s), `tink_webhook_refused_total{reason="replay"} 1`)
}

// TestWebhookRefusalSummaries: once the interval has passed, a refusal is
// summed up again, but never right after the previous summary: a flood
// while nothing else happens stays one event, whatever its length, and
// leaves the events before it in a small log.
func TestWebhookRefusalSummaries(t *testing.T) {
	const secret = "hook-secret-123"
	s := apitest.MustRunServer(t, apitest.WithWebhook(secret, func() {}), apitest.WithRefusalInterval(time.Millisecond), apitest.WithRetention(20))
	ctx := context.Background()
	for i := range 10 {
		_, err := s.Store.Apply(ctx, &state.Batch{Actor: state.APIUser("alice"), Events: []state.Event{{Type: state.EventSync, Message: fmt.Sprintf("real %d", i)}}})
		require.NoError(t, err)
	}
	body := []byte(`{}`)
	refuse := func() {
		time.Sleep(5 * time.Millisecond) // past the interval
		require.Equal(t, http.StatusUnauthorized, postHook(t, s, map[string]string{"X-GitHub-Event": "push"}, body).StatusCode)
	}
	for range 50 {
		refuse()
	}
	require.Equal(t, http.StatusAccepted, postHook(t, s, github("push", sign(secret, body), "d-1"), body).StatusCode, "a real event")
	refuse()
	refuse()
	_, err := s.Store.CompactEvents(ctx)
	require.NoError(t, err)
	evs, err := s.Store.Events(ctx, state.EventQuery{})
	require.NoError(t, err)
	var msgs []string
	for _, ev := range evs {
		msgs = append(msgs, ev.Message)
	}
	require.Len(t, msgs, 13, "%q", msgs)
	require.Equal(t, "real 0", msgs[0], "the oldest real event is still there")
	require.Contains(t, msgs[10], "1 webhook request(s) refused")
	require.Equal(t, "GitHub push received; fetching now", msgs[11])
	require.Contains(t, msgs[12], "50 webhook request(s) refused", "the count carried on while no summary could be written")
}

func TestWebhookOff(t *testing.T) {
	s := apitest.MustRunServer(t)
	resp := postHook(t, s, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("x", nil)}, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// scrapeMetrics returns the server's /metrics text.
func scrapeMetrics(t *testing.T, s *apitest.Server) string {
	t.Helper()
	r := do(t, s, http.MethodGet, "/metrics", s.Tokens["admin"], "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	return string(r.Body)
}
