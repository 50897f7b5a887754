package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// DefaultMaxBody is the request body limit when Config.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// DefaultKeepAlive is how often an idle event stream sends a comment, so
// that proxies and load balancers do not time it out.
const DefaultKeepAlive = 15 * time.Second

// Syncer runs reconciliation on demand; the reconciler loop implements it.
// Besides the codes listed, every method may fail with EINTERNAL.
type Syncer interface {
	// Sync runs a sync now and returns when it has finished. Errors in the
	// repository are not errors of Sync (the sync status holds them).
	// ECONFLICT while reconciliation is suspended.
	Sync(ctx context.Context) error
	// Suspend pauses reconciliation and records an event naming actor.
	// Suspending a suspended server is not an error.
	Suspend(ctx context.Context, actor state.Actor) error
	// Resume undoes Suspend, recording an event naming actor; resuming a
	// running server is not an error.
	Resume(ctx context.Context, actor state.Actor) error
	// Ready reports whether the first sync has finished or failed.
	Ready() bool
}

// Workflows steers workflow runs; the workflow engine implements it. Both
// methods record their events naming actor and return the run as written.
// Besides the codes listed, both may fail with EINTERNAL.
type Workflows interface {
	// Retry runs the workflow's latest run again, from the action that
	// failed or, with fromStart, from its first action. ENOTFOUND if the
	// workflow does not exist or never ran; ECONFLICT if the run has not
	// ended or succeeded.
	Retry(ctx context.Context, actor state.Actor, wf state.ObjectKey, fromStart bool) (*state.WorkflowRun, error)
	// Cancel cancels the workflow's latest run. ENOTFOUND if the workflow
	// does not exist or never ran; ECONFLICT if the run has already ended.
	Cancel(ctx context.Context, actor state.Actor, wf state.ObjectKey) (*state.WorkflowRun, error)
}

// Config configures a Server. Store is required; the rest have defaults.
type Config struct {
	Store state.Store
	// Loader validates pushed objects; nil gets a new one.
	Loader *schema.Loader
	// Syncer runs syncs; nil answers /v1/sync, /v1/suspend and /v1/resume
	// with 503 and makes /readyz ready at once.
	Syncer Syncer
	// Workflows steers runs; nil answers retry and cancel with 503.
	Workflows Workflows
	// Workers serves the worker endpoints; nil answers them with 503.
	Workers Workers
	// Webhook configures POST /v1/webhooks/git; the zero value disables it.
	Webhook Webhook
	// Planner answers POST /v1/plan (tink diff); nil answers 503.
	Planner Planner
	// BMC serves power and boot-device overrides and the power state in
	// hardware status; nil answers the overrides with 503.
	BMC BMC
	// Source reports the Git source's state for /v1/status; nil leaves it
	// out.
	Source func() client.SourceStatus
	// Backup writes a consistent backup of the live store to w (GET
	// /v1/backup); nil answers 503.
	Backup func(ctx context.Context, w io.Writer) error
	// Replica reports which replica answers and whether it leads, for
	// /v1/status when several servers share a store; nil leaves it out.
	Replica func() client.ReplicaStatus
	// Auth checks tokens; nil serves every request as the admin
	// "anonymous" (events name api:anonymous). Use CheckListen to keep
	// such a server on loopback.
	Auth *Auth
	// Log receives one line per request; nil discards them.
	Log *slog.Logger
	// Registry receives the API's metrics and is served on /metrics; nil
	// gets a registry of the server's own.
	Registry *prometheus.Registry
	// MaxBody limits request bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Now is the clock for override times; nil means time.Now.
	Now func() time.Time
	// KeepAlive is the interval of keep-alive comments on event streams;
	// 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// GRPC, when set, serves gRPC requests (HTTP/2 with content-type
	// application/grpc) on the API's listener, in plaintext (h2c) and TLS
	// alike, so that agents reach gRPC on the API port; it does its own
	// admission (API tokens do not apply).
	GRPC http.Handler
}

// Server is the HTTP API. Build it with New; serve Handler on an
// http.Server of your own (call Close before its Shutdown) or use Serve and
// Shutdown.
type Server struct {
	store     state.Store
	loader    *schema.Loader
	syncer    Syncer
	workflows Workflows
	workers   Workers
	webhook   Webhook
	planner   Planner
	bmc       BMC
	source    func() client.SourceStatus
	replica   func() client.ReplicaStatus
	backup    func(ctx context.Context, w io.Writer) error
	auth      *Auth
	log       *slog.Logger
	now       func() time.Time
	maxBody   int64
	keepAlive time.Duration
	grpc      http.Handler

	// plans and decodes bound the memory of requests that validate what
	// they carry (see plan.go and decodeBody).
	plans   chan struct{}
	decodes chan struct{}

	metrics *metrics
	hooks   webhookGuard
	// index keeps the counts of /v1/status and the machines' workflows
	// current from the event log.
	index fleetIndex
	// items keeps encoded list items, listBuffers the buffers lists are
	// written from (listcache.go).
	items       listCache
	listBuffers sync.Pool
	router      *httprouter.Router
	routes      []route
	csrf        *http.CrossOriginProtection

	idPrefix string
	idSeq    atomic.Uint64

	// streams is cancelled by Close: event streams end with it, since
	// http.Server.Shutdown waits for handlers and a stream never ends on
	// its own.
	streams context.Context
	stop    context.CancelFunc

	mu  sync.Mutex
	srv *http.Server
}

// New returns a Server; it does no I/O. It fails only if the metrics cannot
// be registered (Config.Registry already has them).
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	s := &Server{
		store:     cfg.Store,
		loader:    cfg.Loader,
		syncer:    cfg.Syncer,
		workflows: cfg.Workflows,
		workers:   cfg.Workers,
		webhook:   cfg.Webhook,
		planner:   cfg.Planner,
		bmc:       cfg.BMC,
		source:    cfg.Source,
		replica:   cfg.Replica,
		backup:    cfg.Backup,
		auth:      cfg.Auth,
		log:       cfg.Log,
		now:       cfg.Now,
		maxBody:   cfg.MaxBody,
		keepAlive: cfg.KeepAlive,
		plans:     make(chan struct{}, MaxConcurrentPlans),
		decodes:   make(chan struct{}, maxConcurrentDecodes),
		grpc:      cfg.GRPC,
	}
	if s.loader == nil {
		s.loader = schema.NewLoader()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.keepAlive <= 0 {
		s.keepAlive = DefaultKeepAlive
	}
	if s.webhook.RefusalInterval <= 0 {
		s.webhook.RefusalInterval = DefaultRefusalInterval
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	s.metrics = m
	var b [4]byte
	_, _ = rand.Read(b[:])
	s.idPrefix = hex.EncodeToString(b[:])
	s.streams, s.stop = context.WithCancel(context.Background())
	s.csrf = http.NewCrossOriginProtection()

	s.router = httprouter.New()
	// An API answers the path it is asked; redirects would turn a typo into
	// a different request.
	s.router.RedirectTrailingSlash = false
	s.router.RedirectFixedPath = false
	s.router.HandleMethodNotAllowed = true
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.router.Handle(rt.method, rt.path, s.wrap(rt))
	}
	unmatched := s.metrics.forRoute("unmatched")
	s.router.NotFound = s.plain(unmatched, func(r *http.Request) error {
		return Errorf(state.ENOTFOUND, "no such API path: %s (the API lives under /v1)", r.URL.Path)
	})
	s.router.MethodNotAllowed = s.plain(unmatched, func(r *http.Request) error {
		return Errorf(EMETHOD, "%s is not allowed on %s", r.Method, r.URL.Path)
	})
	s.router.PanicHandler = nil // wrap recovers, with the request's context
	return s, nil
}

// Handler returns the API's HTTP handler (with gRPC requests routed to
// Config.GRPC when set).
func (s *Server) Handler() http.Handler {
	if s.grpc == nil {
		return s.router
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			s.grpc.ServeHTTP(w, r)
			return
		}
		s.router.ServeHTTP(w, r)
	})
}

// Serve serves the API on ln until Shutdown; it returns nil after
// Shutdown. With certFile and keyFile it serves TLS.
func (s *Server) Serve(ln net.Listener, certFile, keyFile string) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.grpc != nil {
		// gRPC clients speak HTTP/2 with prior knowledge when in plaintext.
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetHTTP2(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	s.mu.Lock()
	if s.streams.Err() != nil {
		// Shutdown came first: Serve keeps its promise of nil after
		// Shutdown, whichever of the two ran first.
		s.mu.Unlock()
		return ln.Close()
	}
	s.srv = srv
	s.mu.Unlock()
	var err error
	if certFile != "" || keyFile != "" {
		err = srv.ServeTLS(ln, certFile, keyFile)
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends event streams, then stops Serve and waits for requests in
// flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Close()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Close ends every event stream (they would otherwise keep an
// http.Server's Shutdown waiting) and makes new streams end at once. It
// does not stop a server started with Serve; Shutdown does.
func (s *Server) Close() {
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
}

// MountUI serves h, the web dashboard (package api/ui), at /ui/ on the
// API's router: one listener, one set of tokens. h does its own sign-in
// and reaches the API through Handler, so every read and action passes
// the same route table and role checks as a REST call. Call it before
// serving.
func (s *Server) MountUI(h http.Handler) {
	serve := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h.ServeHTTP(w, r) }
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		s.router.Handle(m, "/ui", serve)
		s.router.Handle(m, "/ui/*path", serve)
	}
}

// Authenticate returns the principal of an API token as the route checks
// see it: the anonymous admin when the server runs without tokens,
// EUNAUTHORIZED for a token it does not know. The dashboard uses it at
// sign-in and to show only the actions a role may take.
func (s *Server) Authenticate(token string) (*Principal, error) {
	if s.auth == nil {
		return anonymous(), nil
	}
	if p, ok := s.auth.Authenticate(token); ok {
		return p, nil
	}
	return nil, Errorf(state.EUNAUTHORIZED, "the API token is not valid")
}

// TokensRequired reports whether requests need an API token (the server
// has an auth file).
func (s *Server) TokensRequired() bool { return s.auth != nil }

// RouteInfo describes one route, for documentation and tests.
type RouteInfo struct {
	Method string
	Path   string
	// Role is the role the route needs; RolePublic needs no token.
	Role Role
}

// Routes lists every route with the role it needs.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, rt := range s.routes {
		out[i] = RouteInfo{Method: rt.method, Path: rt.path, Role: rt.role}
	}
	return out
}

// route is one entry of the route table.
type route struct {
	method, path string
	role         Role
	// hardwareParam names the path parameter that holds the hardware a
	// worker route acts for; a worker token may use the route only for
	// the hardware it is bound to.
	hardwareParam string
	handle        handlerFunc
}

// handlerFunc serves one request. It returns an error instead of writing
// one, so that the error shape, the status and the logging live in wrap.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// call is what wrap learned about a request before its handler runs.
type call struct {
	params httprouter.Params
	who    *Principal
	id     string
	// hardware is the hardware object a worker route acts for, resolved
	// from its id once, before the role check: the handler passes this,
	// not the id, to the engine, so the machine checked is the machine
	// served.
	hardware string
}

// actor is who the request's changes are recorded as.
func (c *call) actor() state.Actor { return c.who.Actor() }

// recorder captures the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status.
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to flush
// event streams).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) requestID() string {
	return s.idPrefix + "-" + strconv.FormatUint(s.idSeq.Add(1), 10)
}

// wrap turns a route into a router handle: authentication, the role check,
// the handler, the error shape, metrics and the request log.
func (s *Server) wrap(rt route) httprouter.Handle {
	rm := s.metrics.forRoute(rt.path)
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		c := &call{params: ps, id: s.requestID()}
		rec.Header().Set("X-Request-Id", c.id)
		var err error
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				if rec.status == 0 {
					writeError(rec, errorBody(err))
				}
			}
			s.finish(rec, r, c, rt.path, err, start)
			rm.observe(rec.status, time.Since(start).Seconds())
		}()
		switch {
		case rt.role == RolePublic:
			c.who = &Principal{Name: "public"}
		default:
			if err = s.browserGuard(r); err != nil {
				break
			}
			c.who, err = s.authenticate(r)
			if err == nil && rt.hardwareParam != "" {
				c.hardware = s.workerHardware(r.Context(), c.who, ps.ByName(rt.hardwareParam))
			}
			if err == nil && !c.who.Permits(rt.role, c.hardware) {
				err = forbidden(c.who, rt, ps, c.hardware)
			}
		}
		if err == nil {
			err = rt.handle(rec, r, c)
		}
		if err != nil && rec.status == 0 {
			writeError(rec, errorBody(err))
		}
	}
}

// forbidden says why a known token may not use a route, naming the token
// (never showing it) and, on a worker route, the hardware the route's id
// named.
func forbidden(p *Principal, rt route, ps httprouter.Params, hardware string) error {
	if p.Role == RoleWorker {
		if rt.role == RoleWorker {
			id := ps.ByName(rt.hardwareParam)
			if hardware != id {
				id = fmt.Sprintf("%s (hardware %s)", id, hardware)
			}
			return Errorf(EFORBIDDEN, "worker token %s is bound to hardware %s; it may not act for %s", p.Name, p.Hardware, id)
		}
		return Errorf(EFORBIDDEN, "worker token %s may use only the worker endpoints, not %s %s", p.Name, rt.method, rt.path)
	}
	return Errorf(EFORBIDDEN, "token %s has role %s; %s %s needs %s", p.Name, p.Role, rt.method, rt.path, rt.role)
}

// finish logs a request. Internal errors are logged in full (the response
// said only that the log has them); tokens never reach the log. A 503 is
// the server declining for a reason it states (not ready yet, busy, no
// syncer), not a fault: a warning, and for the probes, which a load
// balancer or kubelet asks every few seconds while a large fleet's first
// sync runs, only a debug line (their answer is the information).
func (s *Server) finish(rec *recorder, r *http.Request, c *call, route string, err error, start time.Time) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	level := slog.LevelDebug
	switch {
	case rec.status == http.StatusServiceUnavailable && (route == "/readyz" || route == "/healthz"):
	case rec.status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case rec.status >= 500:
		level = slog.LevelError
	case rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden:
		level = slog.LevelWarn
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		level = slog.LevelInfo
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("id", c.id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Duration("duration", time.Since(start)),
		slog.String("remote", r.RemoteAddr),
	}
	if c.who != nil {
		attrs = append(attrs, slog.String("user", c.who.Name))
	}
	if err != nil {
		if state.ErrorCode(err) == state.EINTERNAL {
			attrs = append(attrs, slog.String("err", err.Error()))
		} else {
			attrs = append(attrs, slog.String("err", errorBody(err).Message))
		}
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// plain serves the router's own answers (unknown path, wrong method) in the
// API's error shape.
func (s *Server) plain(rm *routeMetrics, fn func(r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		c := &call{id: s.requestID()}
		rec.Header().Set("X-Request-Id", c.id)
		err := fn(r)
		writeError(rec, errorBody(err))
		s.finish(rec, r, c, "unmatched", err, start)
		rm.observe(rec.status, time.Since(start).Seconds())
	})
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b = append(b, '\n')
	_, err = w.Write(b)
	// The client went away; there is no one left to tell.
	_ = err
	return nil
}
