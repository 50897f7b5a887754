// Package ui is the web dashboard that tink-server serves at /ui/ on the
// API listener: the fleet, its runs and its Git state, live. It is a front
// door like the CLI: every read and every action is a call to the REST API,
// run in process through the API's own handler with the signed-in
// operator's token, so the route table decides who may do what and the
// engine's rules stay in one place. Pages are rendered on the server with
// html/template (everything escaped); a little plain JavaScript, served
// from the binary under a strict Content-Security-Policy, keeps the live
// parts current from the API's event stream.
package ui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// contentSecurityPolicy allows only the dashboard's own script, style and
// connections: no inline script or style, nothing from another origin, no
// framing, forms posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config configures the dashboard. API is required.
type Config struct {
	// API is the server the dashboard fronts; the dashboard calls its
	// Handler for every read and action.
	API *api.Server
	// Snapshot returns the repository of the last attempted revision, for
	// the review page (planned through POST /v1/plan); nil leaves the
	// review page saying so.
	Snapshot func(r *http.Request) (revision string, files fs.FS, err error)
	// Log receives sign-ins and internal errors; nil discards them.
	Log *slog.Logger
}

// UI is the dashboard's HTTP handler; mount it with api.Server.MountUI.
type UI struct {
	srv      *api.Server
	api      http.Handler
	routes   map[string]api.Role
	snapshot func(r *http.Request) (string, fs.FS, error)
	log      *slog.Logger
	cop      *http.CrossOriginProtection
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler
}

// New returns the dashboard; it parses the embedded templates (a failure
// is a bug in this package, reported as an error all the same).
func New(cfg Config) (*UI, error) {
	if cfg.API == nil {
		return nil, errors.New("ui: Config.API is required")
	}
	u := &UI{srv: cfg.API, api: cfg.API.Handler(), snapshot: cfg.Snapshot, log: cfg.Log, cop: http.NewCrossOriginProtection(),
		routes: map[string]api.Role{}, pages: map[string]*template.Template{}}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	for _, rt := range cfg.API.Routes() {
		u.routes[rt.Method+" "+rt.Path] = rt.Role
	}
	if err := u.parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: static files: %w", err)
	}
	u.static = http.StripPrefix("/ui/static/", http.FileServerFS(sub))

	m := http.NewServeMux()
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusMovedPermanently) })
	m.HandleFunc("GET /ui/static/", u.serveStatic)
	m.HandleFunc("GET /ui/signin", u.signinPage)
	m.HandleFunc("POST /ui/signin", u.signin)
	m.HandleFunc("POST /ui/signout", u.action(u.signout))
	m.HandleFunc("GET /ui/{$}", u.page(u.overview))
	m.HandleFunc("GET /ui/hardware", u.page(u.hardwareList))
	m.HandleFunc("GET /ui/hardware/{name}", u.page(u.hardwarePage))
	m.HandleFunc("GET /ui/workflows", u.page(u.workflowList))
	m.HandleFunc("GET /ui/workflows/{name}", u.page(u.workflowPage))
	m.HandleFunc("GET /ui/events", u.page(u.eventsPage))
	m.HandleFunc("GET /ui/review", u.page(u.reviewPage))
	m.HandleFunc("GET /ui/confirm", u.page(u.confirmPage))
	m.HandleFunc("POST /ui/action", u.action(u.runAction))
	m.HandleFunc("GET /ui/stream", u.page(u.eventStream))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, &client.Error{StatusCode: http.StatusNotFound, Code: state.ENOTFOUND, Message: "no such dashboard page: " + r.URL.Path})
	})
	u.mux = m
	return u, nil
}

// ServeHTTP serves the dashboard with its security headers.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	u.mux.ServeHTTP(w, r)
}

func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	// The assets change only with the binary; an hour saves reloads
	// without keeping an upgraded server's script away for long.
	w.Header().Set("Cache-Control", "private, max-age=3600")
	u.static.ServeHTTP(w, r)
}

// page wraps a read-only handler with the session.
func (u *UI) page(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := u.session(w, r)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		fn(w, r, s)
	}
}

// action wraps a state-changing handler with the session and the
// cross-origin and CSRF checks.
func (u *UI) action(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s, err := u.session(w, r)
		if err == nil {
			err = u.checkAction(r, s)
		}
		if err != nil {
			u.fail(w, r, err)
			return
		}
		fn(w, r, s)
	}
}

// can reports whether the session's role may call the API route (method
// and route pattern as in the route table): the dashboard shows a button
// only then. The API checks again when the call is made.
func (u *UI) can(s *session, method, route string) bool {
	role, ok := u.routes[method+" "+route]
	return ok && s.Who.Permits(role, "")
}

// page is what every template gets.
type page struct {
	Title string
	// Nav names the menu entry to highlight.
	Nav     string
	Session *session
	Signed  bool
	Data    any
}

// parseTemplates builds one template set per page: the layout and the
// page's own file.
func (u *UI) parseTemplates() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("ui: templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", base, err)
		}
		u.pages[base] = t
	}
	return nil
}

// render writes a whole page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	u.execute(w, r, status, name, "layout", p)
}

// fragment writes the live part of a page (its "live" template), which the
// page's script swaps in when events arrive.
func (u *UI) fragment(w http.ResponseWriter, r *http.Request, name string, p *page) {
	u.execute(w, r, http.StatusOK, name, "live", p)
}

func (u *UI) execute(w http.ResponseWriter, r *http.Request, status int, name, tmpl string, p *page) {
	t := u.pages[name]
	if t == nil {
		u.log.Error("dashboard: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p.Session != nil {
		p.Signed = p.Session.token != ""
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, tmpl, p); err != nil {
		u.log.Error("dashboard: render", "page", name, "err", err)
		http.Error(w, "internal error: the server log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// errorData is what the error page shows.
type errorData struct {
	Status  int
	Code    string
	Message string
	Details []client.Detail
}

// fail answers with an error: the API's own status and message when the
// API refused, a sign-in page when there is no session.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *client.Error
	if !errors.As(err, &ae) {
		u.log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
		ae = &client.Error{StatusCode: http.StatusInternalServerError, Code: state.EINTERNAL, Message: "internal error: the server log has the details"}
	}
	status := ae.StatusCode
	if ae.Code == state.EUNAUTHORIZED {
		status = http.StatusUnauthorized
		if r.Method == http.MethodGet && r.URL.Path != "/ui/stream" && r.URL.Query().Get("fragment") == "" {
			http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if r.URL.Path == "/ui/stream" || r.URL.Query().Get("fragment") != "" {
		http.Error(w, ae.Message, status)
		return
	}
	u.render(w, r, status, "error", &page{Title: http.StatusText(status), Data: errorData{Status: status, Code: ae.Code, Message: ae.Message, Details: ae.Details}})
}
