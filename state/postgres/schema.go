package postgres

import (
	"context"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/tinkops/tinkops/state"
)

// migrations are the schema's versions, in order: migration i takes the
// schema from version i to i+1. A released migration is never edited; a
// change is a new one.
var migrations = []string{
	// 1: the initial schema.
	`CREATE TABLE objects (
		kind text COLLATE "C" NOT NULL,
		namespace text COLLATE "C" NOT NULL,
		name text COLLATE "C" NOT NULL,
		resource_version bigint NOT NULL,
		doc json NOT NULL,
		PRIMARY KEY (kind, namespace, name)
	);
	CREATE TABLE runs (
		namespace text COLLATE "C" NOT NULL,
		workflow text COLLATE "C" NOT NULL,
		number integer NOT NULL,
		resource_version bigint NOT NULL,
		state text NOT NULL,
		doc json NOT NULL,
		PRIMARY KEY (namespace, workflow, number)
	);
	CREATE INDEX runs_state ON runs (state);
	CREATE TABLE events (
		seq bigint PRIMARY KEY,
		time timestamptz NOT NULL,
		type text NOT NULL,
		kind text NOT NULL,
		namespace text NOT NULL,
		name text NOT NULL,
		doc json NOT NULL
	);
	CREATE INDEX events_object ON events (kind, name, seq);
	CREATE TABLE counters (
		id integer PRIMARY KEY CHECK (id = 1),
		next_seq bigint NOT NULL,
		next_rv bigint NOT NULL,
		oldest bigint NOT NULL
	);
	INSERT INTO counters VALUES (1, 1, 1, 1);
	CREATE TABLE sync_status (
		id integer PRIMARY KEY CHECK (id = 1),
		doc json NOT NULL
	);
	CREATE TABLE leases (
		name text PRIMARY KEY,
		holder text NOT NULL,
		token bigint NOT NULL,
		expires_at timestamptz NOT NULL
	);`,
}

// migrationLock is the advisory lock key that serialises migrations of
// replicas starting at once: a hash of the schema's name, so that
// installations in other schemas of the database do not wait for each
// other.
func migrationLock(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tinkops migrate " + schema))
	return int64(h.Sum64())
}

// SchemaVersion is the schema version this server writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema to SchemaVersion, in one transaction under the
// advisory lock. A database at a newer version is refused.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return s.wrap(err, "connect to PostgreSQL %s", s.where)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock(s.opts.Schema)); err != nil {
		return s.wrap(err, "lock the schema of %s for migration", s.where)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.opts.Schema}.Sanitize()+`;
		CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return s.wrap(err, "create the schema in %s", s.where)
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return s.wrap(err, "read the schema version of %s", s.where)
	}
	if version > len(migrations) {
		return state.Errorf(state.EINVALID, "database %s has schema version %d; this server knows versions up to %d (a newer tink-server migrated it)",
			s.where, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return s.wrap(err, "migrate %s to schema version %d", s.where, v+1)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v+1); err != nil {
			return s.wrap(err, "record schema version %d in %s", v+1, s.where)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(err, "migrate %s", s.where)
	}
	if version < len(migrations) {
		s.opts.Logger.Info("migrated the state schema", "database", s.where, "from", version, "to", len(migrations))
	}
	return nil
}

// nextSeq returns the sequence number the next event will get.
func (s *Store) nextSeq(ctx context.Context) (uint64, error) {
	var next int64
	if err := s.pool.QueryRow(ctx, "SELECT next_seq FROM counters WHERE id = 1").Scan(&next); err != nil {
		return 0, s.wrap(err, "read counters of %s", s.where)
	}
	return uint64(next), nil
}
