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
	Suspended    bool          `json:"suspended,omitempty"`
	LastSyncAt   time.Time     `json:"lastSyncAt,omitzero"`
	LastDuration time.Duration `json:"lastDuration,omitempty"`
}

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
