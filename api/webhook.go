package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Webhook makes a Git push reach the server at once instead of at the next
// poll. GitHub signs its deliveries with HMAC-SHA256 of the body under a
// shared secret (X-Hub-Signature-256, lowercase hex) and names each with a
// unique X-GitHub-Delivery id; GitLab sends the secret itself
// (X-Gitlab-Token). Both are compared in constant time. The route needs no
// API token: the signature is the authentication.
//
// The route is open to anyone who can reach the port, so what it does for
// a refused request is bounded: no event each (a flood would push the
// record of who did what out of the event log's retention), but a count in
// tink_webhook_refused_total and at most one summary event per
// RefusalInterval, never two in a row.
type Webhook struct {
	// Secret is shared with the Git host; empty disables the endpoint.
	Secret string
	// Trigger asks the Git source to fetch now; it must not block.
	Trigger func()
	// Push, if set, is called instead of Trigger for a push whose payload
	// names the ref pushed and its new head (GitHub's and GitLab's "ref"
	// and "after"), so the source can fetch without listing the remote's
	// refs first (gitsource.Git.TriggerPush). The payload is signed but
	// may be late or replayed: Push must treat head as a hint, not as
	// where the ref points. It must not block.
	Push func(ref, head string)
	// RefusalInterval is the least time between two summary events of
	// refused requests (default DefaultRefusalInterval).
	RefusalInterval time.Duration
}

// Bounds of the webhook's defences.
const (
	// DefaultRefusalInterval is Webhook.RefusalInterval's default.
	DefaultRefusalInterval = time.Minute
	// deliveryWindow is how long a GitHub delivery id is remembered: a
	// captured delivery sent again within it is refused. GitHub's own
	// redeliveries (from the hook's settings page) carry a new id.
	deliveryWindow = 24 * time.Hour
	// maxDeliveries bounds the ids remembered, whatever the rate of signed
	// deliveries; past it the oldest are forgotten first. A replay that
	// slips through only triggers a fetch, which is idempotent.
	maxDeliveries = 10_000
	// maxDeliveryID bounds a delivery id (GitHub's are 36-character GUIDs).
	maxDeliveryID = 100
)

// Reasons a webhook request is refused, as tink_webhook_refused_total's
// reason label has them.
const (
	refusedSignature = "signature"
	refusedReplay    = "replay"
)

// webhookGuard holds the state of the webhook's defences: the delivery ids
// seen and the refusals not yet summarised in an event.
type webhookGuard struct {
	mu sync.Mutex
	// seen maps a delivery id to when it came; order lists the ids oldest
	// first, so expiry and the size bound drop from its front.
	seen  map[string]time.Time
	order []string
	// refused counts refusals since the last summary event, which was
	// written at lastSummary; lastFrom and lastReason describe the newest.
	refused     int
	since       time.Time
	lastSummary time.Time
	lastFrom    string
	lastReason  string
}

// remember records a delivery id at now and reports whether it is new.
func (g *webhookGuard) remember(id string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	for len(g.order) > 0 && (len(g.order) >= maxDeliveries || now.Sub(g.seen[g.order[0]]) > deliveryWindow) {
		delete(g.seen, g.order[0])
		g.order = g.order[1:]
	}
	if _, dup := g.seen[id]; dup {
		return false
	}
	g.seen[id] = now
	g.order = append(g.order, id)
	return true
}

// refusal counts one refused request and returns the summary event to
// write, if one is due (the first refusal after a quiet interval, or the
// first after interval since the last summary), with how many refusals it
// counts, for summarised.
func (g *webhookGuard) refusal(from, reason string, now time.Time, interval time.Duration) (summary string, n int, due bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refused == 0 {
		g.since = now
	}
	g.refused++
	g.lastFrom, g.lastReason = from, reason
	if !g.lastSummary.IsZero() && now.Sub(g.lastSummary) < interval {
		return "", 0, false
	}
	g.lastSummary = now
	summary = fmt.Sprintf("%d webhook request(s) refused since %s; the last from %s: %s (tink_webhook_refused_total counts them all)",
		g.refused, g.since.UTC().Format(time.RFC3339), g.lastFrom, g.lastReason)
	return summary, g.refused, true
}

// summarised takes the n refusals a written summary counted off the
// count; the next summary counts from now.
func (g *webhookGuard) summarised(n int, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused = max(g.refused-n, 0)
	g.since = now
}

// refusalActor is the actor of the summary events of refused webhooks.
const refusalActor state.Actor = "webhook"

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
		s.refuseWebhook(r, refusedSignature, "missing or wrong signature")
		return Errorf(state.EUNAUTHORIZED, "the webhook signature is missing or wrong")
	}
	if host == "GitHub" {
		id := r.Header.Get("X-GitHub-Delivery")
		if id == "" || len(id) > maxDeliveryID {
			s.refuseWebhook(r, refusedSignature, "no X-GitHub-Delivery id")
			return Errorf(state.EINVALID, "a GitHub delivery needs its X-GitHub-Delivery id (at most %d characters)", maxDeliveryID)
		}
		if !s.hooks.remember(id, s.now()) {
			s.refuseWebhook(r, refusedReplay, "delivery "+id+" replayed")
			return Errorf(state.ECONFLICT, "GitHub delivery %s was already received; a replayed delivery is refused", id)
		}
	}
	switch event {
	case "ping":
		return writeJSON(w, http.StatusOK, map[string]string{"result": "pong"})
	case "push", "Push Hook", "Tag Push Hook":
	default:
		return writeJSON(w, http.StatusAccepted, map[string]string{"result": fmt.Sprintf("%s event %q ignored", host, event)})
	}
	s.trigger(body)
	if _, err := s.store.Apply(r.Context(), &state.Batch{Actor: "webhook", Events: []state.Event{{Type: state.EventSync, Message: host + " push received; fetching now"}}}); err != nil {
		s.log.Error("record webhook", "err", err)
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"result": "fetch triggered"})
}

// trigger asks the source to fetch, naming the pushed head when the
// payload gives it.
func (s *Server) trigger(body []byte) {
	var push struct {
		Ref   string `json:"ref"`
		After string `json:"after"`
	}
	if s.webhook.Push != nil && json.Unmarshal(body, &push) == nil && push.Ref != "" && lowerHex(push.After, 40) {
		s.webhook.Push(push.Ref, push.After)
		return
	}
	s.webhook.Trigger()
}

// refuseWebhook counts a refused request and, at most once per interval and
// never right after another, writes a summary event. The summary is
// skipped while the newest event of the log is the previous summary, so a
// flood during a quiet spell adds one event, not one per interval.
func (s *Server) refuseWebhook(r *http.Request, reason, why string) {
	s.metrics.webhookRefused.WithLabelValues(reason).Inc()
	summary, n, due := s.hooks.refusal(r.RemoteAddr, why, s.now(), s.webhook.RefusalInterval)
	if !due {
		return
	}
	s.log.Warn("webhook requests refused", "summary", summary)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	last, err := s.store.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
	if err == nil && len(last) == 1 && last[0].Actor == refusalActor && last[0].Type == state.EventError {
		return // the count carries on into the next summary
	}
	if _, err := s.store.Apply(ctx, &state.Batch{Actor: refusalActor, Events: []state.Event{{Type: state.EventError, Message: summary}}}); err != nil {
		s.log.Error("record refused webhooks", "err", err)
		return
	}
	s.hooks.summarised(n, s.now())
}

// verifyWebhook checks a GitHub or GitLab delivery and returns the host
// and the event name. A GitHub signature is accepted only as GitHub writes
// it: sha256= and 64 lowercase hex digits.
func (s *Server) verifyWebhook(r *http.Request, body []byte) (host, event string, ok bool) {
	secret := []byte(s.webhook.Secret)
	if sig := r.Header.Get("X-Hub-Signature-256"); sig != "" {
		digits, prefixed := strings.CutPrefix(sig, "sha256=")
		if !prefixed || !lowerHex(digits, 2*sha256.Size) {
			return "GitHub", "", false
		}
		got, err := hex.DecodeString(digits)
		if err != nil {
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

// lowerHex reports whether s is n lowercase hex digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
