package state

import (
	"fmt"
	"time"
)

// SyncStatus says where Git stands: what the reconciler last tried, what it
// last applied, and why the last attempt failed. A failed attempt changes
// nothing else, so LastAppliedRevision is what the fleet runs on.
type SyncStatus struct {
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	LastAppliedRevision   string `json:"lastAppliedRevision,omitempty"`
	// Errors are the errors of the last attempt; empty when it succeeded.
	Errors []SyncError `json:"errors,omitempty"`
	// Suspended is set while an operator has paused reconciliation.
	Suspended bool `json:"suspended,omitempty"`
	// Failure classifies why the last attempt applied nothing, as flux
	// classifies a failed reconcile; empty once an attempt applies.
	Failure SyncFailure `json:"failure,omitempty"`
	// Reason says why, in one line, and what happens next.
	Reason string `json:"reason,omitempty"`
	// Retries counts transient failures in a row; NextRetryAt is when the
	// next attempt is due.
	Retries      int           `json:"retries,omitempty"`
	NextRetryAt  time.Time     `json:"nextRetryAt,omitzero"`
	LastSyncAt   time.Time     `json:"lastSyncAt,omitzero"`
	LastDuration time.Duration `json:"lastDuration,omitempty"`
}

// SyncFailure is the class of a failed sync, which decides whether and
// when it is tried again.
type SyncFailure string

// Sync failure classes.
const (
	// FailureStalled needs a person: the repository has errors, or its
	// plan was refused (it prunes too much). Retrying the same revision
	// cannot help, so it is tried again only when the revision changes or
	// someone asks for a sync.
	FailureStalled SyncFailure = "stalled"
	// FailureWaiting waits for an operator: reconciliation is suspended
	// until resumed.
	FailureWaiting SyncFailure = "waiting"
	// FailureTransient may pass on its own (the repository could not be
	// read, the store failed, the sync ran out of time): it is retried
	// with a growing backoff.
	FailureTransient SyncFailure = "transient"
)

// SyncError is one positioned error of a sync attempt. It mirrors the errors
// of package schema, which state cannot import.
type SyncError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"` // field path, e.g. spec.interfaces[0].dhcp.mac
	Message string `json:"message"`
}

// Error renders the error as file:line:column: path: message, leaving out
// what is unknown.
func (e SyncError) Error() string {
	s := ""
	if e.File != "" {
		s = e.File
		if e.Line > 0 {
			s += fmt.Sprintf(":%d", e.Line)
			if e.Column > 0 {
				s += fmt.Sprintf(":%d", e.Column)
			}
		}
		s += ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Message
}
