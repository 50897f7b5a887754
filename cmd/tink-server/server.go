package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tinkops/tinkops/schema"
)

// Config is tink-server's configuration, from flags.
type Config struct {
	Listen  string
	DataDir string
	Repo    string
}

// Main wires the server: it validates the repository and serves the API.
// Constructors do no I/O; Open does.
type Main struct {
	Config Config
	log    *slog.Logger
	stdout io.Writer

	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	status status
}

// status is what /v1/status reports until the reconciler provides more.
type status struct {
	Repo          string           `json:"repo"`
	Valid         bool             `json:"valid"`
	LastValidated time.Time        `json:"lastValidated"`
	Counts        map[string]int   `json:"counts,omitempty"`
	Errors        schema.ErrorList `json:"errors"`
}

// NewMain returns a Main with default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{
		Config: Config{Listen: "127.0.0.1:42113", DataDir: "./tink-data"},
		log:    slog.New(slog.NewTextHandler(stderr, nil)),
		stdout: stdout,
	}
}

// ParseFlags reads the command line into Config.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("tink-server", flag.ContinueOnError)
	fs.StringVar(&m.Config.Listen, "listen", m.Config.Listen, "address to serve the API on")
	fs.StringVar(&m.Config.DataDir, "data-dir", m.Config.DataDir, "directory for the server's state")
	fs.StringVar(&m.Config.Repo, "repo", m.Config.Repo, "repository directory holding hardware, templates and workflows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if m.Config.Repo == "" {
		return errors.New("--repo is required")
	}
	return nil
}

// Open validates the repository and starts serving.
func (m *Main) Open(ctx context.Context) error {
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	m.validate(ctx)
	ln, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Listen, err)
	}
	m.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /v1/status", m.handleStatus)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("serve", "err", err)
		}
	}()
	fmt.Fprintf(m.stdout, "tink-server listening on http://%s (repo %s)\n", ln.Addr(), m.Config.Repo)
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

func (m *Main) validate(ctx context.Context) {
	set, err := schema.NewLoader().Load(ctx, os.DirFS(m.Config.Repo))
	st := status{Repo: m.Config.Repo, LastValidated: time.Now().UTC(), Valid: err == nil}
	var list schema.ErrorList
	switch {
	case err == nil:
		st.Counts = set.Counts()
		m.log.Info("repository valid", "repo", m.Config.Repo, "objects", set.Len())
	case errors.As(err, &list):
		st.Errors = list
		m.log.Warn("repository has errors", "repo", m.Config.Repo, "errors", len(list))
		for _, e := range list {
			m.log.Warn("invalid", "error", e.Error())
		}
	default:
		st.Errors = schema.ErrorList{{Pos: schema.Pos{File: m.Config.Repo}, Message: err.Error()}}
	}
	m.mu.Lock()
	m.status = st
	m.mu.Unlock()
}

func (m *Main) handleStatus(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	st := m.status
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// Close stops serving, letting requests in flight finish.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.srv.Shutdown(ctx)
}
