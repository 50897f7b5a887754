package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/api/ui"
	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/metrics"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/leader"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Config is tink-server's configuration, from flags.
type Config struct {
	Listen       string
	DataDir      string
	Repo         string
	Branch       string
	Tag          string
	Commit       string
	Path         string
	PollInterval time.Duration
	GitAuthDir   string
	Prune        bool
	SyncTimeout  time.Duration
	AuthFile     string
	Insecure     bool
	TLSCert      string
	TLSKey       string
	// WebhookSecret enables POST /v1/webhooks/git (GitHub signature or
	// GitLab token).
	WebhookSecret string
	// SecretsDir holds BMC credentials: one folder per secret with
	// username and password files.
	SecretsDir string
	// BMCPollInterval reads every BMC's power state this often (0: never).
	BMCPollInterval time.Duration
	// BMCTimeout bounds one BMC call; BMCRetries is how often a failed
	// call is tried again.
	BMCTimeout time.Duration
	BMCRetries int
	// BMCCACert is a PEM bundle of the CAs that sign Redfish BMCs'
	// certificates (else the system's roots).
	BMCCACert string
	// MaxEvents and MaxEventAge are the event log's retention (see
	// state.Retention; 0 keeps the default, negative removes the limit).
	MaxEvents   int
	MaxEventAge time.Duration
	// MaxObjects is the most objects a repository (or a plan's tarball)
	// may declare; the loader refuses more rather than spend unbounded
	// memory on a mistaken commit. 0 is schema.MaxObjects.
	MaxObjects int
	// LogLevel and LogFormat shape the log (see newLogger).
	LogLevel  string
	LogFormat string
	// Config is the YAML config file the settings were read from, if any.
	Config string
	// Agents configures the front door for Tinkerbell's agent.
	Agents AgentsConfig
	// Boot is the machine-facing listener (boot.go).
	Boot BootConfig
	// Store selects the state store (see store.go): badger or postgres,
	// with the DSN in PostgresDSNFile (or TINK_POSTGRES_DSN).
	Store           string
	PostgresDSNFile string
	PostgresSchema  string
	// ReplicaName and LeaderLease configure leadership among replicas
	// (see replica.go).
	ReplicaName string
	LeaderLease time.Duration
	// IdleGC lowers GOGC while the server is idle (gcpolicy.go); off when
	// GOGC or GOMEMLIMIT is set.
	IdleGC bool
}

// Main wires the server: the store, the source, the reconcile loop and the
// API. Constructors do no I/O; Open does, and Close undoes it.
type Main struct {
	Config Config
	// Getenv reads the environment (os.Getenv; tests replace it).
	Getenv func(string) string
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer

	Store  state.Store
	Source gitsource.Source
	Loop   *reconciler.Loop
	Engine *workflow.Engine
	BMC    *bmc.Controller
	API    *api.Server
	// Elector elects the leader among replicas on a shared store; nil
	// with Badger (one process, always leading).
	Elector *leader.Elector

	ln     net.Listener
	grpcLn net.Listener
	boot   bootListener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMain returns a Main with default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{
		Config: Config{Listen: "127.0.0.1:42113", DataDir: "./tink-data", Branch: gitsource.DefaultBranch,
			PollInterval: gitsource.DefaultPollInterval, SyncTimeout: reconciler.DefaultSyncTimeout,
			BMCTimeout: 15 * time.Second, BMCRetries: 3, LogLevel: "info", LogFormat: "auto", IdleGC: true},
		Getenv: os.Getenv,
		log:    slog.New(slog.NewTextHandler(stderr, nil)),
		stdout: stdout,
		stderr: stderr,
	}
}

// ParseFlags reads the command line into Config.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("tink-server", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	c := &m.Config
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve the API on")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded state store")
	fs.StringVar(&c.Repo, "repo", c.Repo, "the desired state: a Git URL (https://, ssh://, git@host:path, git://, file://) or a local directory (watched)")
	fs.StringVar(&c.Branch, "branch", c.Branch, "Git branch to follow")
	fs.StringVar(&c.Tag, "tag", c.Tag, "Git tag to pin (instead of a branch)")
	fs.StringVar(&c.Commit, "commit", c.Commit, "Git commit to pin (full hash)")
	fs.StringVar(&c.Path, "path", c.Path, "subdirectory of the repository holding the objects")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "how often to check the repository for new commits")
	fs.StringVar(&c.GitAuthDir, "git-auth-dir", c.GitAuthDir, "directory with Git credentials (username/password or token, ssh key, known_hosts)")
	fs.BoolVar(&c.Prune, "prune", c.Prune, "delete Git-managed objects that are removed from Git")
	fs.DurationVar(&c.SyncTimeout, "sync-timeout", c.SyncTimeout, "deadline of one sync (load, plan, apply)")
	fs.StringVar(&c.AuthFile, "auth-file", c.AuthFile, "YAML list of API tokens (name, role, sha256 of the token); required to listen beyond loopback")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "listen beyond loopback without API tokens (anyone who reaches the port is admin)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate file (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS key file (with --tls-cert)")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", c.WebhookSecret, "secret shared with the Git host for POST /v1/webhooks/git (prefer the environment variable: arguments show in ps)")
	fs.StringVar(&c.SecretsDir, "secrets-dir", c.SecretsDir, "directory of BMC credentials: one folder per secret (credentialsRef, authSecretRef) with username, password and allowed-hosts (the BMC addresses the secret may be sent to) files; read on use, so a changed secret needs no restart")
	fs.DurationVar(&c.BMCPollInterval, "bmc-poll-interval", c.BMCPollInterval, "read every BMC's power state this often and show it in hardware status (0: off)")
	fs.DurationVar(&c.BMCTimeout, "bmc-timeout", c.BMCTimeout, "deadline of one BMC call")
	fs.IntVar(&c.BMCRetries, "bmc-retries", c.BMCRetries, "how often a failed BMC call is tried again (with exponential backoff) before the action fails")
	fs.StringVar(&c.BMCCACert, "bmc-ca-cert", c.BMCCACert, "PEM file of the CAs that sign Redfish BMC certificates (default: the system's roots; insecureTLS on a bmc block skips the check)")
	fs.IntVar(&c.MaxEvents, "max-events", c.MaxEvents, "how many of the newest events the event log keeps (0: 1,000,000; negative: no limit)")
	fs.DurationVar(&c.MaxEventAge, "max-event-age", c.MaxEventAge, "how long the event log keeps an event (0: 720h; negative: no limit)")
	fs.IntVar(&c.MaxObjects, "max-objects", c.MaxObjects, fmt.Sprintf("the most objects the repository may declare (0: %d); a fleet of 100,000 machines with a workflow each needs 200,000 and more memory", schema.MaxObjects))
	fs.BoolVar(&c.IdleGC, "idle-gc", c.IdleGC, "while the server allocates little, collect garbage more often (GOGC 10) and return free memory to the system; the default GOGC comes back as soon as it works (off when GOGC or GOMEMLIMIT is set)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json, text, or auto (text on a terminal, else JSON)")
	fs.StringVar(&c.Config, "config", c.Config, "YAML file of settings: flag names as keys (flags and environment variables win over it)")
	m.agentFlags(fs)
	c.Boot.flags(fs)
	storeFlags(fs, c)
	withEnvUsage(fs)
	getenv := m.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := configLayers(fs, args, getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (tink-server takes flags; subcommands: backup, restore, migrate)", fs.Arg(0))
	}
	log, err := newLogger(m.stderr, c.LogLevel, c.LogFormat)
	if err != nil {
		return err
	}
	m.log = log
	if c.Repo == "" {
		return errors.New("--repo is required")
	}
	if err := checkStore(c); err != nil {
		return err
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("--poll-interval must be positive, got %s", c.PollInterval)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.BMCPollInterval < 0 {
		return fmt.Errorf("--bmc-poll-interval must not be negative, got %s", c.BMCPollInterval)
	}
	if c.BMCTimeout <= 0 {
		return fmt.Errorf("--bmc-timeout must be positive, got %s", c.BMCTimeout)
	}
	if c.MaxObjects < 0 {
		return fmt.Errorf("--max-objects must not be negative, got %d", c.MaxObjects)
	}
	if c.BMCRetries < 0 {
		return fmt.Errorf("--bmc-retries must not be negative, got %d", c.BMCRetries)
	}
	if err := c.Agents.check(); err != nil {
		return err
	}
	if err := c.Boot.check(); err != nil {
		return err
	}
	if c.SecretsDir != "" {
		if fi, err := os.Stat(c.SecretsDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--secrets-dir %s is not a directory", c.SecretsDir)
		}
	}
	return nil
}

// Open opens the store, starts following the repository and serves.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	c := m.Config
	var auth *api.Auth
	if c.AuthFile != "" {
		if auth, err = api.LoadAuthFile(c.AuthFile); err != nil {
			return fmt.Errorf("--auth-file: %w", err)
		}
	}
	if err := api.CheckListen(c.Listen, auth, c.Insecure); err != nil {
		return err
	}
	getenv := m.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	m.Store, err = openStore(ctx, c, getenv, m.log)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	health := newStoreHealth(m.Store, m.log)
	reg := prometheus.NewRegistry()
	met, err := metrics.Open(ctx, reg, m.Store, m.log)
	if err != nil {
		return err
	}
	if m.Elector, err = m.openReplica(reg); err != nil {
		return err
	}
	m.Source, err = gitsource.New(gitsource.Config{
		Repo: c.Repo, Branch: c.Branch, Tag: c.Tag, Commit: c.Commit, Path: c.Path,
		PollInterval: c.PollInterval, AuthDir: c.GitAuthDir,
		CacheDir: filepath.Join(c.DataDir, "git-cache"), Logger: m.log, OnSync: met.GitSynced,
	})
	if err != nil {
		return fmt.Errorf("repository: %w", err)
	}
	loader := schema.NewLoader()
	loader.MaxObjects = c.MaxObjects
	rec := reconciler.New(reconciler.Config{Store: m.Store, Loader: loader, Log: m.log, Plan: reconciler.Options{Prune: c.Prune}})
	m.Loop = reconciler.NewLoop(rec, m.Source, c.SyncTimeout)
	m.Loop.OnSync = met.Reconciled
	retries := c.BMCRetries
	if retries == 0 {
		retries = -1 // the flag's 0 means none; the Controller's 0 means its default
	}
	secrets := bmc.NewSecrets(c.SecretsDir)
	if unbound, err := secrets.Unbound(); err != nil {
		m.log.Warn("cannot list BMC secrets", "err", err)
	} else if len(unbound) > 0 {
		m.log.Warn("BMC secrets without an allowed-hosts file are sent to no BMC; list the BMC addresses each may go to (see SECURITY.md)",
			"secrets", unbound, "dir", c.SecretsDir)
	}
	m.BMC, err = bmc.New(bmc.Config{Store: m.Store, Secrets: secrets, Connection: bmc.StoreConnection(m.Store),
		CACertFile: c.BMCCACert, CallTimeout: c.BMCTimeout, Retries: retries, Log: m.log, OnCall: met.BMCCalled})
	if err != nil {
		return fmt.Errorf("--bmc-ca-cert: %w", err)
	}
	m.Engine = workflow.New(workflow.Config{Store: m.Store, Loader: loader, Log: m.log, Preparer: m.BMC, Observer: met, Leader: leaderFunc(m.Elector),
		Gate: reconciler.NewRollout(m.Store, m.log)})
	agents, err := m.newAgents(reg)
	if err != nil {
		return err
	}
	m.API, err = api.New(api.Config{Store: m.Store, Loader: loader, Syncer: replicaSyncer{m.Loop, m.Store, health, m.Elector, new(atomic.Bool)}, Workflows: m.Engine, Workers: workers{m.Engine}, Auth: auth,
		Webhook: webhookOf(c.WebhookSecret, m.Source), Planner: rec, Log: m.log, Registry: reg,
		BMC: bmcAPI{ctrl: m.BMC, store: m.Store}, Source: sourceStatus(m.Source),
		GRPC:   agents.handler(),
		Backup: storeBackup(m.Store), Replica: replicaStatus(m.Elector)})
	if err != nil {
		return err
	}
	dash, err := ui.New(ui.Config{API: m.API, Log: m.log, Snapshot: snapshotOf(m.Source)})
	if err != nil {
		return err
	}
	m.API.MountUI(dash)
	m.ln, err = net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.goRun("source", func() error { return m.Source.Run(runCtx) })
	m.runLeaderWork(runCtx)
	m.goRun("workflow engine", func() error { return m.Engine.Run(runCtx) })
	m.goRun("metrics", func() error { return met.Run(runCtx) })
	if health != nil {
		m.goRun("store health", func() error { return health.Run(runCtx, 2*time.Second) })
	}
	m.goRun("api", func() error { return m.API.Serve(m.ln, c.TLSCert, c.TLSKey) })
	if err := m.openBoot(); err != nil {
		return err
	}
	if err := m.serveAgents(runCtx, agents); err != nil {
		return err
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(m.stdout, "tink-server listening on %s://%s (repo %s, data %s)\n", scheme, m.ln.Addr(), gitsource.RedactURL(c.Repo), c.DataDir)
	return nil
}

// goRun runs fn in a goroutine that Close waits for.
func (m *Main) goRun(what string, fn func() error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := fn(); err != nil {
			m.log.Error(what+" stopped", "err", err)
		}
	}()
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close stops serving (letting requests in flight finish), stops the loop
// and the source, and closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.API != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.API.Shutdown(ctx))
		cancel()
	}
	errs = append(errs, m.closeBoot())
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

// snapshotOf gives the dashboard's review page the source's latest
// snapshot: the repository of the last attempted revision.
// webhookOf connects the webhook to the source: a Git source is told the
// head a push names, so it fetches without listing the remote's refs first.
func webhookOf(secret string, src gitsource.Source) api.Webhook {
	w := api.Webhook{Secret: secret, Trigger: src.Trigger}
	if g, ok := src.(*gitsource.Git); ok {
		w.Push = g.TriggerPush
	}
	return w
}

func snapshotOf(src gitsource.Source) func(r *http.Request) (string, fs.FS, error) {
	return func(r *http.Request) (string, fs.FS, error) {
		snap, err := src.Snapshot(r.Context())
		if err != nil {
			return "", nil, err
		}
		return snap.Revision, snap.FS(), nil
	}
}

// sourceStatus reports the source's state to the API's /v1/status.
func sourceStatus(src gitsource.Source) func() client.SourceStatus {
	return func() client.SourceStatus {
		st := src.Status()
		return client.SourceStatus{Source: st.Source, Ref: st.Ref, Path: st.Path, Revision: st.Revision, LastSync: st.LastSync,
			LastFetch: st.LastFetch, LastError: st.LastError, LastErrorTime: st.LastErrorTime, Failures: st.Failures, NextSync: st.NextSync}
	}
}
