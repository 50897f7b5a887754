// Package badger implements state.Store on an embedded Badger database, the
// server's default: one directory, no external service.
//
// # Key layout
//
// All keys are ASCII prefixes followed by binary parts; 0x00 separates
// variable-length parts (names cannot contain control characters), and
// integers are big-endian so that byte order is numeric order.
//
//	o/<kind> 0x00 <namespace> 0x00 <name>      object (JSON of state.Object, packed)
//	r/<namespace> 0x00 <workflow> 0x00 <u64>    workflow run (JSON of state.WorkflowRun, packed)
//	e/<u64 seq>                                 event (JSON of state.Event, packed)
//	m/format                                    layout version, "tinkops-state/3"
//	m/counters                                  next event seq and resourceVersion (2 x u64)
//	m/oldest                                    oldest retained event seq (u64)
//	m/sync                                      sync status (JSON of state.SyncStatus)
//	m/redo                                      commit record of a split batch (JSON)
//	x/<u64 chunk>                               staged chunks of a split batch, as versions
//	                                            before the REDO file wrote them (read, never written)
//
// So a kind, a kind in a namespace, the runs of a workflow and the event log
// from a sequence number are each one prefix scan, in the order the API
// returns them. Values are JSON so that a damaged record can be read (see
// the README); the store never interprets specs. Objects, runs and events
// are packed: compressed with S2 behind a marker byte when that makes them
// smaller (pack.go says why); `tink-server migrate` reads every record
// decoded (state.Dumper).
//
// # Durability and group commit
//
// Apply returns after its batch is synced to disk (Badger SyncWrites),
// unless Options.NoSync. Concurrent Apply calls are group-committed: a single
// writer goroutine takes all pending batches, checks each one's
// preconditions against the state including the batches before it, writes
// the accepted ones in as few Badger transactions as fit, and acknowledges
// them after one sync. A batch whose precondition fails is answered with its
// error and leaves no trace; the others in its group are unaffected. The
// writer assigns event sequence numbers and resource versions, so both
// follow commit order without gaps.
//
// # Batches larger than one transaction
//
// A batch that does not fit Badger's transaction limit is written as a redo
// log (chunks in a file beside the database, then a commit record, then
// copied into place; see split.go). Readers take their snapshots under a lock that the copy holds
// exclusively, so in a running store they see the batch entirely or not at
// all; after a crash, Open completes a committed batch and discards an
// uncommitted one before serving anything.
//
// # Events and watchers
//
// Events are written in the same transaction as the change they describe.
// Watch reads the stored log from any retained sequence number and then
// follows live events from an in-memory ring (Options.WatchBuffer); a watcher
// that falls behind the ring reads the log from disk again, so writers never
// wait for watchers and watchers see no gaps. Retention (Options.Retention)
// removes the oldest events on a timer; sequence numbers come from
// m/counters, not from the log, so they never restart.
//
// # Background work
//
// Open starts the writer, an event-compaction timer and a value-log GC
// timer; Close stops them (and every watcher), waits for in-flight calls,
// then closes Badger, which flushes its memtable, and releases the
// directory.
//
// # Opening, locking and damage
//
// Open takes an flock on <dir>/tinkops.lock (released by the kernel if the
// process dies) and fails at once with ECONFLICT if another process holds
// it. It then checks the MANIFEST and every table file before Badger reads
// them, because Badger panics on damaged tables in goroutines no recover
// reaches and deletes tables a damaged MANIFEST no longer lists (checkDir in
// verify.go sets those aside instead). Damage is reported as EINTERNAL
// naming the directory; README.md in this directory says how to recover.
package badger
