package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/eventring"
)

// Options configures a Store. The zero value is the production setting.
type Options struct {
	// Retention says which events are kept; the zero value keeps the
	// defaults of state.Retention.
	Retention state.Retention
	// CompactInterval is how often events outside Retention are removed.
	// Default 1 minute; negative disables the timer (CompactEvents still
	// works). With several replicas every one compacts; the work is
	// idempotent.
	CompactInterval time.Duration
	// MaxGroup caps how many concurrent Apply calls are committed in one
	// transaction. Default 500.
	MaxGroup int
	// WatchBuffer is how many recent events are kept in memory for
	// watchers; a watcher further behind reads the table. Default 4096.
	WatchBuffer int
	// PollInterval is how often the event log is read even without a
	// notification, which bounds how late a watcher learns of an event
	// whose notification was lost (a reconnect). Default 2 seconds.
	PollInterval time.Duration
	// Schema is the PostgreSQL schema the store's tables live in, so
	// that a database can hold several installations (or other
	// applications' tables). Default "tinkops".
	Schema string
	// MaxConns caps the connection pool. Default 16.
	MaxConns int32

	// Now is the clock for object and event times and for retention.
	// Default time.Now.
	Now func() time.Time
	// Logger receives the store's errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.Retention = o.Retention.WithDefaults()
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Minute
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = 500
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 4096
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Schema == "" {
		o.Schema = "tinkops"
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store is the PostgreSQL implementation of state.Store.
type Store struct {
	opts   Options
	pool   *pgxpool.Pool
	where  string // user@host:port/database, for messages (never the password)
	notify string // the LISTEN/NOTIFY channel of the schema
	secret string // the password, removed from every error

	// life is held shared by every call and exclusively by Close, so that
	// Close waits for in-flight calls and later calls see closed.
	life   sync.RWMutex
	closed bool

	reqs       chan *request
	writerStop context.CancelFunc
	writerDone chan struct{}

	hub *eventring.Ring

	ctx     context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	watches eventring.Watches

	compactMu sync.Mutex
	closeOnce sync.Once
}

var _ state.Store = (*Store)(nil)

// Open connects to the database dsn names (a postgres:// URL or key=value
// string), creates or migrates the schema, and starts the store's background
// work. It fails with EINVALID for a malformed DSN and EUNAVAILABLE when the
// database cannot be reached; no error carries the password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in its parse errors; Redact would
		// need the parsed password, which we do not have.
		return nil, state.Errorf(state.EINVALID, "PostgreSQL DSN: %v", redactDSNError(err, dsn))
	}
	if !validSchema(opts.Schema) {
		return nil, state.Errorf(state.EINVALID, "PostgreSQL schema %q: want lower-case letters, digits and _ (at most 50 characters, not starting with a digit)", opts.Schema)
	}
	cfg.MaxConns = opts.MaxConns
	// Every statement names tables without a schema; the search path
	// puts them in ours.
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "tink-server"
	s := &Store{
		opts:       opts,
		where:      describe(cfg.ConnConfig),
		secret:     cfg.ConnConfig.Password,
		notify:     opts.Schema + "_events",
		reqs:       make(chan *request, opts.MaxGroup),
		writerDone: make(chan struct{}),
	}
	s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, s.unavailable(err, "connect to %s", s.where)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	next, err := s.nextSeq(ctx)
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	s.hub = eventring.New(opts.WatchBuffer, next)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	wctx, wstop := context.WithCancel(context.Background())
	s.writerStop = wstop
	w := &writer{s: s}
	go func() {
		defer close(s.writerDone)
		w.run(wctx)
	}()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.listen(s.ctx)
	}()
	if opts.CompactInterval > 0 {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.every(opts.CompactInterval, func() {
				if _, err := s.CompactEvents(s.ctx); err != nil && s.ctx.Err() == nil {
					s.opts.Logger.Error("compact events", "database", s.where, "err", err)
				}
			})
		}()
	}
	return s, nil
}

// validSchema reports whether name may be Options.Schema: a plain
// identifier, short enough that the notification channel derived from it
// fits PostgreSQL's 63-byte limit.
func validSchema(name string) bool {
	if name == "" || len(name) > 50 || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// describe names the database for messages: user@host:port/database.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Where names the database the store uses (user@host:port/database), for
// status and logs; it never carries the password.
func (s *Store) Where() string { return s.where }

// every runs fn every d until Close.
func (s *Store) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Ping checks that the database answers, for readiness: EUNAVAILABLE naming
// the database when it does not.
func (s *Store) Ping(ctx context.Context) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return s.unavailable(err, "PostgreSQL %s", s.where)
	}
	return nil
}

// Close implements state.Store: it ends watchers and background work, waits
// for in-flight calls and the writer, and closes the connection pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.watches.Close()
		s.cancel()
		s.bg.Wait()

		s.life.Lock()
		s.closed = true
		s.life.Unlock()

		s.writerStop()
		<-s.writerDone
		s.pool.Close()
	})
	return nil
}

// enter starts a call: it fails if the store is closed and otherwise holds
// life until the returned function runs.
func (s *Store) enter(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, state.Errorf(state.EINTERNAL, "state store %s is closed", s.where)
	}
	return s.life.RUnlock, nil
}

// Redact removes secret from msg.
func Redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "xxxxx")
}

func redactDSNError(err error, dsn string) string {
	msg := err.Error()
	// A URL's password sits between the first ':' after "//" and the '@'.
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				msg = Redact(msg, rest[c+1:at])
			}
		}
	}
	// key=value form: password=... up to the next space.
	if i := strings.Index(dsn, "password="); i >= 0 {
		pw := dsn[i+len("password="):]
		if j := strings.IndexByte(pw, ' '); j >= 0 {
			pw = pw[:j]
		}
		msg = Redact(msg, strings.Trim(pw, "'"))
	}
	return msg
}

// wrap classifies a database error: our own *state.Error values and context
// errors pass through, connection failures are EUNAVAILABLE (retry later:
// the database is restarting or out of reach), anything else EINTERNAL;
// the message says what was being done and never carries the password.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *state.Error
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isConnError(err) {
		return s.unavailable(err, format, args...)
	}
	return state.Errorf(state.EINTERNAL, "%s: %s", fmt.Sprintf(format, args...), Redact(err.Error(), s.secret))
}

func (s *Store) unavailable(err error, format string, args ...any) error {
	return state.Errorf(state.EUNAVAILABLE, "%s: %s", fmt.Sprintf(format, args...), Redact(err.Error(), s.secret))
}

// isConnError reports whether err means the database could not be reached
// or the connection broke, as opposed to a failed statement.
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: admin shutdown,
		// crash shutdown, cannot connect now (starting up).
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF") || strings.Contains(err.Error(), "connection reset")
}
