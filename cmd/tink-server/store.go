package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tinkops/tinkops/reconciler/leader"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
	"github.com/tinkops/tinkops/state/postgres"
)

// Store selection. Badger (one process, a local directory) is the default;
// PostgreSQL lets several replicas share one database. The DSN comes from a
// file (a mounted Kubernetes Secret) or TINK_POSTGRES_DSN, never from a
// flag: arguments show in ps.

// Store kinds for --store.
const (
	storeBadger   = "badger"
	storePostgres = "postgres"
)

// envPostgresDSN is the environment variable holding the DSN when no
// --postgres-dsn-file is given.
const envPostgresDSN = envPrefix + "POSTGRES_DSN"

// storeFlags registers the store selection flags.
func storeFlags(fs *flag.FlagSet, c *Config) {
	if c.Store == "" {
		c.Store = storeBadger
	}
	if c.LeaderLease == 0 {
		c.LeaderLease = leader.DefaultTTL
	}
	fs.StringVar(&c.Store, "store", c.Store, "state store: badger (embedded, in --data-dir) or postgres (several replicas on one database)")
	fs.StringVar(&c.PostgresDSNFile, "postgres-dsn-file", c.PostgresDSNFile,
		"file holding the PostgreSQL connection string (postgres://user:password@host:5432/db?sslmode=verify-full) for --store postgres; else "+envPostgresDSN)
	fs.StringVar(&c.PostgresSchema, "postgres-schema", c.PostgresSchema, "PostgreSQL schema of tinkops' tables (default tinkops)")
	fs.StringVar(&c.ReplicaName, "replica-name", c.ReplicaName, "this replica's name among the servers on one database (default: the host name, which is the pod's name in Kubernetes)")
	fs.DurationVar(&c.LeaderLease, "leader-lease", c.LeaderLease, "how long the leader's lease runs without renewal: a new leader takes over at most this long (plus a fifth) after the leader dies")
}

// checkStore validates the store flags.
func checkStore(c *Config) error {
	switch c.Store {
	case storeBadger:
		if c.PostgresDSNFile != "" {
			return errors.New("--postgres-dsn-file needs --store postgres")
		}
	case storePostgres:
		if c.LeaderLease < time.Second {
			return fmt.Errorf("--leader-lease must be at least 1s, got %s", c.LeaderLease)
		}
	default:
		return fmt.Errorf("invalid value %q for --store: want badger or postgres", c.Store)
	}
	return nil
}

// postgresDSN reads the DSN from --postgres-dsn-file or TINK_POSTGRES_DSN.
// Errors name where it was looked for, never its content.
func postgresDSN(file string, getenv func(string) string) (string, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--postgres-dsn-file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 64<<10))
		if err != nil {
			return "", fmt.Errorf("--postgres-dsn-file %s: %w", file, err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("--postgres-dsn-file %s is empty", file)
		}
		return dsn, nil
	}
	if dsn := strings.TrimSpace(getenv(envPostgresDSN)); dsn != "" {
		return dsn, nil
	}
	return "", fmt.Errorf("--store postgres needs --postgres-dsn-file or %s", envPostgresDSN)
}

// storeOpenTimeout bounds how long the server waits at start for a
// database that does not answer (pods start in any order).
const storeOpenTimeout = 2 * time.Minute

// openStore opens the store the configuration selects.
func openStore(ctx context.Context, c Config, getenv func(string) string, log *slog.Logger) (state.Store, error) {
	retention := state.Retention{MaxEvents: c.MaxEvents, MaxAge: c.MaxEventAge}
	if c.Store != storePostgres {
		s, err := badger.Open(ctx, c.DataDir, badger.Options{Retention: retention})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	dsn, err := postgresDSN(c.PostgresDSNFile, getenv)
	if err != nil {
		return nil, err
	}
	opts := postgres.Options{Schema: c.PostgresSchema, Logger: log, Retention: retention}
	deadline := time.Now().Add(storeOpenTimeout)
	backoff := 500 * time.Millisecond
	for {
		s, err := postgres.Open(ctx, dsn, opts)
		if err == nil {
			log.Info("state store open", "store", storePostgres, "database", s.Where())
			return s, nil
		}
		if state.ErrorCode(err) != state.EUNAVAILABLE || time.Now().Add(backoff).After(deadline) {
			return nil, err
		}
		log.Warn("PostgreSQL does not answer yet; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// backuper is a store that can stream a backup of itself (Badger); the API
// offers GET /v1/backup only for such a store. PostgreSQL is backed up with
// the database's own tools (pg_dump).
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (badger.BackupInfo, error)
}

// storeBackup returns the API's backup function for s, or nil.
func storeBackup(s state.Store) func(ctx context.Context, w io.Writer) error {
	b, ok := s.(backuper)
	if !ok {
		return nil
	}
	return func(ctx context.Context, w io.Writer) error { _, err := b.Backup(ctx, w); return err }
}

// pinger is a store whose database can be out of reach (PostgreSQL).
type pinger interface {
	Ping(ctx context.Context) error
}

// storeHealth tracks whether the store's database answers, for readiness:
// a replica that cannot reach the database must not get traffic.
type storeHealth struct {
	p   pinger
	log *slog.Logger
	ok  atomic.Bool
}

// newStoreHealth returns the health of s, or nil when s is always
// reachable (Badger).
func newStoreHealth(s state.Store, log *slog.Logger) *storeHealth {
	p, ok := s.(pinger)
	if !ok {
		return nil
	}
	h := &storeHealth{p: p, log: log}
	h.ok.Store(true)
	return h
}

// Healthy reports the last check; a nil storeHealth is always healthy.
func (h *storeHealth) Healthy() bool { return h == nil || h.ok.Load() }

// Run checks the database every interval until ctx ends.
func (h *storeHealth) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := h.p.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if was := h.ok.Swap(err == nil); was != (err == nil) {
			if err != nil {
				h.log.Error("state store unreachable: not ready", "err", err)
			} else {
				h.log.Info("state store reachable again: ready")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
