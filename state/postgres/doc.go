// Package postgres implements state.Store on PostgreSQL, so that several
// tink-server replicas can share one database.
//
// # Schema
//
// Everything lives in one schema (Options.Schema, default "tinkops") of the
// database the DSN names; connections set search_path to it:
//
//	objects   (kind, namespace, name) -> resource_version, doc (JSON of state.Object)
//	runs      (namespace, workflow, number) -> resource_version, state, doc (JSON of state.WorkflowRun)
//	events    seq -> time, type, kind, namespace, name, doc (JSON of state.Event)
//	counters  one row: next_seq, next_rv, oldest (oldest retained event)
//	sync_status one row: doc (JSON of state.SyncStatus)
//	leases    name -> holder, token, expires_at (the leader lease, package lease)
//	schema_migrations version -> applied_at
//
// Key columns use the "C" collation, so that lists come in byte order as
// they do from Badger. Documents are stored as json (verbatim text), so a
// record reads by eye in psql and comes back exactly as written.
//
// The server creates and migrates the schema itself at Open: migrations are
// numbered, each runs in the transaction that records it, and the whole step
// holds a transaction-level advisory lock, so replicas starting at once
// migrate one after another and the later ones find nothing to do. A
// database migrated by a newer server (a version this one does not know) is
// refused rather than written to.
//
// # Writes, sequence numbers and group commit
//
// Every write locks the single counters row (SELECT ... FOR UPDATE) in its
// transaction, assigns sequence numbers and resource versions from it, and
// writes it back before committing. So writers, from any replica, commit one
// after another in sequence order: the event log has no gaps, and when a
// reader sees event n it also sees every event before it. To keep one
// replica's concurrent writers from paying one commit each, Apply calls are
// group-committed as in state/badger: one goroutine takes every pending
// batch, checks each one's preconditions against the database plus the
// batches before it in the group, and writes the accepted ones in one
// transaction; a batch that fails its precondition is answered with its
// error and leaves no trace.
//
// # Watch
//
// The writing transaction calls pg_notify('<schema>_events', next) and the
// notification is delivered when it commits. Each Store keeps one
// connection LISTENing; on a notification (or every PollInterval, in case
// one was missed while reconnecting) it reads the new events from the table
// into a ring that watchers follow, exactly as the Badger store's watchers
// follow its ring. The events table is the truth: a watcher behind the ring
// reads the table, and a notification only says "look now".
//
// # Fencing
//
// A batch applied with a context carrying a fencing token (state.WithFence)
// is written only if, in the same transaction, the lease it names still has
// that token and has not expired; otherwise Apply fails with ECONFLICT and
// nothing is written. That is what keeps a deposed leader from writing.
//
// # Secrets
//
// The DSN's password is never part of an error or log line: errors from the
// driver are passed through Redact, which removes it.
package postgres
