// Package apitest runs a real API server for tests: a Badger store in a
// temporary directory, the api.Server on 127.0.0.1:0, fakes for the
// reconciler and the workflow engine, and helpers to seed objects and drive
// runs. The api tests and the tink CLI tests share it.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// Revision is the Git revision objects seeded with PutGit carry.
const Revision = "main@sha1:0123456789abcdef0123456789abcdef01234567"

// Server is a running API server and what it runs on.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL       string
	API       *api.Server
	Store     *badger.Store
	Syncer    *FakeSyncer
	Workflows *FakeWorkflows
	// Log holds every log line the server wrote (JSON, debug level).
	Log *Buffer
	// Tokens maps a token's name to the raw token, when WithTokens was
	// given: admin, operator, viewer, worker-node-01, worker-node-02.
	Tokens map[string]string

	loader *schema.Loader
}

type options struct {
	auth          *api.Auth
	tokens        map[string]string
	maxBody       int64
	keepAlive     time.Duration
	noSyncer      bool
	noWorkflows   bool
	retentionKeep int
	webhook       api.Webhook
	refusals      time.Duration
	bmc           api.BMC
}

// Option configures MustRunServer.
type Option func(*options)

// WithTokens runs the server with a tokens file of five tokens, one per role
// and two workers (bound to node-01 and node-02); Server.Tokens has them.
func WithTokens() Option {
	return func(o *options) {
		o.tokens = map[string]string{
			"admin":          "tink-admin-secret-0001",
			"operator":       "tink-operator-secret-0002",
			"viewer":         "tink-viewer-secret-0003",
			"worker-node-01": "tink-worker-node-01-secret-0004",
			"worker-node-02": "tink-worker-node-02-secret-0005",
		}
		var list []api.Token
		for name, tok := range o.tokens {
			t := api.Token{Name: name, SHA256: api.HashToken(tok)}
			switch {
			case strings.HasPrefix(name, "worker-"):
				t.Role, t.Hardware = api.RoleWorker, strings.TrimPrefix(name, "worker-")
			default:
				t.Role = api.Role(name)
			}
			list = append(list, t)
		}
		a, err := api.NewAuth(list)
		if err != nil {
			panic(err) // the list above is valid by construction
		}
		o.auth = a
	}
}

// WithMaxBody sets the request body limit.
func WithMaxBody(n int64) Option { return func(o *options) { o.maxBody = n } }

// WithKeepAlive sets the event streams' keep-alive interval.
func WithKeepAlive(d time.Duration) Option { return func(o *options) { o.keepAlive = d } }

// WithoutSyncer runs the server without a Syncer.
func WithoutSyncer() Option { return func(o *options) { o.noSyncer = true } }

// WithoutWorkflows runs the server without a workflow engine.
func WithoutWorkflows() Option { return func(o *options) { o.noWorkflows = true } }

// WithWebhook enables POST /v1/webhooks/git with secret; trigger is called
// for each verified push.
func WithWebhook(secret string, trigger func()) Option {
	return func(o *options) { o.webhook = api.Webhook{Secret: secret, Trigger: trigger} }
}

// WithWebhookPush sets the webhook's Push, called instead of its trigger
// for a verified push whose payload names its ref and new head; use it
// after WithWebhook.
func WithWebhookPush(push func(ref, head string)) Option {
	return func(o *options) { o.webhook.Push = push }
}

// WithRefusalInterval sets the least time between two summary events of
// refused webhook requests.
func WithRefusalInterval(d time.Duration) Option { return func(o *options) { o.refusals = d } }

// WithBMC serves power and boot-device overrides through b.
func WithBMC(b api.BMC) Option { return func(o *options) { o.bmc = b } }

// WithRetention keeps only the newest n events (and compacts only when the
// test calls Store.CompactEvents).
func WithRetention(n int) Option { return func(o *options) { o.retentionKeep = n } }

// MustRunServer starts a server for the test and stops it when the test ends.
func MustRunServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.webhook.RefusalInterval = o.refusals
	ctx := context.Background()
	bo := badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler), CompactInterval: -1, GCInterval: -1}
	if o.retentionKeep > 0 {
		bo.Retention = state.Retention{MaxEvents: o.retentionKeep}
	}
	st, err := badger.Open(ctx, tb.TempDir(), bo)
	require.NoError(tb, err)

	s := &Server{Store: st, Log: &Buffer{}, Tokens: o.tokens, loader: schema.NewLoader()}
	cfg := api.Config{
		Store:     st,
		Loader:    s.loader,
		Auth:      o.auth,
		Log:       slog.New(slog.NewJSONHandler(s.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxBody:   o.maxBody,
		KeepAlive: o.keepAlive,
		Webhook:   o.webhook,
		BMC:       o.bmc,
		Planner:   reconciler.New(reconciler.Config{Store: st, Loader: s.loader}),
	}
	if !o.noSyncer {
		s.Syncer = &FakeSyncer{Store: st}
		s.Syncer.SetReady(true)
		cfg.Syncer = s.Syncer
	}
	if !o.noWorkflows {
		s.Workflows = &FakeWorkflows{Store: st}
		cfg.Workflows = s.Workflows
	}
	srv, err := api.New(cfg)
	require.NoError(tb, err)
	s.API = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s.URL = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln, "", "") }()
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, srv.Shutdown(sctx))
		require.NoError(tb, <-done)
		require.NoError(tb, st.Close())
	})
	return s
}

// PutGit stores the objects of a YAML document as a sync would: source git,
// revision Revision, file name. It returns them as stored.
func (s *Server) PutGit(tb testing.TB, file, doc string) []*state.Object {
	tb.Helper()
	objs, _, errs := s.loader.DecodeFile(file, []byte(doc))
	require.Empty(tb, errs)
	b := &state.Batch{Actor: state.ActorGit, Revision: Revision}
	for _, o := range objs {
		so, err := reconciler.ToState(o, state.SourceGit, Revision)
		require.NoError(tb, err)
		b.Put(so, "")
	}
	res, err := s.Store.Apply(context.Background(), b)
	require.NoError(tb, err)
	return res.Objects
}

// Run returns a workflow's latest run (in the empty namespace).
func (s *Server) Run(tb testing.TB, workflow string) *state.WorkflowRun {
	tb.Helper()
	ctx := context.Background()
	wf, err := s.Store.GetObject(ctx, state.ObjectKey{Kind: state.KindWorkflow, Name: workflow})
	require.NoError(tb, err)
	var st struct {
		LastRun int `json:"lastRun"`
	}
	require.NoError(tb, json.Unmarshal(wf.Status, &st))
	run, err := s.Store.GetRun(ctx, state.RunKey{Workflow: workflow, Number: st.LastRun})
	require.NoError(tb, err)
	return run
}

// UpdateRun changes a workflow's latest run as the engine or a worker would,
// as actor, and returns it as written.
func (s *Server) UpdateRun(tb testing.TB, workflow string, actor state.Actor, fn func(*state.WorkflowRun)) *state.WorkflowRun {
	tb.Helper()
	run := s.Run(tb, workflow)
	fn(run)
	out, err := s.Store.PutRun(context.Background(), actor, run)
	require.NoError(tb, err)
	return out
}

// Actions returns n pending actions for a run on worker mac, as the engine
// renders them when a run starts.
func Actions(mac string, names ...string) []state.RunAction {
	out := make([]state.RunAction, len(names))
	for i, n := range names {
		out[i] = state.RunAction{Task: "provision", Name: n, Image: "alpine:3", Timeout: 60, Worker: mac, State: state.RunPending,
			Environment: map[string]string{"SECRET_TOKEN": "rendered-secret-value"}}
	}
	return out
}

// Buffer is a bytes.Buffer safe for concurrent use, for the server's log.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// HardwareYAML returns a Hardware object with one interface.
func HardwareYAML(name, mac, ip string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %s
  labels: {rack: r1}
spec:
  bmc: {address: 10.10.0.11, protocol: ipmi, credentialsRef: bmc-%s}
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp:
        hostname: %s
        mac: "%s"
        ip: {address: %s, netmask: 255.255.255.0, gateway: 10.10.1.1}
      netboot: {allowPXE: true, allowWorkflow: true}
`, name, name, name, mac, ip)
}

// TemplateYAML returns a bare Tinkerbell template document with two actions.
func TemplateYAML(name string) string {
	return fmt.Sprintf(`version: "0.1"
name: %s
global_timeout: 3600
tasks:
  - name: provision
    worker: "{{.device_1}}"
    actions:
      - name: wipe-disk
        image: alpine:3
        timeout: 600
      - name: install-os
        image: alpine:3
        timeout: 600
`, name)
}

// WorkflowYAML returns a Workflow object.
func WorkflowYAML(name, template, hardware, mac string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: %s
spec:
  templateRef: %s
  hardwareRef: %s
  hardwareMap:
    device_1: "%s"
`, name, template, hardware, mac)
}
