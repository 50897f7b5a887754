// Package state holds the actual state of the fleet: the runtime model and the
// Store interface that keeps it.
//
// The declared model (what an operator wrote in Git) lives in package schema;
// this package records what the server has applied and observed: every object
// as last applied (Object), every workflow run (WorkflowRun), an ordered event
// log (Event) and where Git stands (SyncStatus). It imports no other package
// of ours, so object specs are kept as JSON documents (json.RawMessage) that
// schema decodes; the store neither reads nor interprets them.
//
// Every change goes through Store.Apply (the Put and Delete methods are
// one-change shorthands for it), which writes the change and the events that
// describe it together, durably, or not at all. Events carry a store-wide
// sequence number that only grows and has no gaps, which is what lets a client
// resume Store.Watch from the last sequence number it saw and still miss
// nothing.
//
// Errors are *Error values carrying one of the codes below; the API maps codes
// to HTTP statuses in one place, so callers branch on ErrorCode, never on
// message text.
//
// Implementations: state/badger (embedded, the default) and state/postgres
// (several replicas on one database). Any implementation must pass the
// contract suite in state/storetest.
package state
