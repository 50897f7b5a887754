package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/tinkops/tinkops/state"
)

// Webhook makes a Git push reach the server at once instead of at the next
// poll. GitHub signs its deliveries with HMAC-SHA256 of the body under a
// shared secret (X-Hub-Signature-256); GitLab sends the secret itself
// (X-Gitlab-Token). Both are compared in constant time. The route needs
// no API token: the signature is the authentication.
type Webhook struct {
	// Secret is shared with the Git host; empty disables the endpoint.
	Secret string
	// Trigger asks the Git source to fetch now; it must not block.
	Trigger func()
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.webhook.Secret == "" || s.webhook.Trigger == nil {
		return Errorf(EUNAVAILABLE, "webhooks are not configured on this server (--webhook-secret)")
	}
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	host, event, ok := s.verifyWebhook(r, body)
	if !ok {
		msg := fmt.Sprintf("webhook from %s refused: missing or wrong signature", r.RemoteAddr)
		if _, err := s.store.Apply(r.Context(), &state.Batch{Actor: "webhook", Events: []state.Event{{Type: state.EventError, Message: msg}}}); err != nil {
			s.log.Error("record refused webhook", "err", err)
		}
		return Errorf(state.EUNAUTHORIZED, "the webhook signature is missing or wrong")
	}
	switch event {
	case "ping":
		return writeJSON(w, http.StatusOK, map[string]string{"result": "pong"})
	case "push", "Push Hook", "Tag Push Hook":
	default:
		return writeJSON(w, http.StatusAccepted, map[string]string{"result": fmt.Sprintf("%s event %q ignored", host, event)})
	}
	s.webhook.Trigger()
	if _, err := s.store.Apply(r.Context(), &state.Batch{Actor: "webhook", Events: []state.Event{{Type: state.EventSync, Message: host + " push received; fetching now"}}}); err != nil {
		s.log.Error("record webhook", "err", err)
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"result": "fetch triggered"})
}

// verifyWebhook checks a GitHub or GitLab delivery and returns the host
// and the event name.
func (s *Server) verifyWebhook(r *http.Request, body []byte) (host, event string, ok bool) {
	secret := []byte(s.webhook.Secret)
	if sig := r.Header.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return "GitHub", "", false
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return "GitHub", r.Header.Get("X-GitHub-Event"), hmac.Equal(got, mac.Sum(nil))
	}
	if tok := r.Header.Get("X-Gitlab-Token"); tok != "" {
		return "GitLab", r.Header.Get("X-Gitlab-Event"), subtle.ConstantTimeCompare([]byte(tok), secret) == 1
	}
	return "", "", false
}
