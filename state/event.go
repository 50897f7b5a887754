package state

import (
	"slices"
	"strings"
	"time"
)

// EventType says what an event is about.
type EventType string

// Event types. The store itself appends created, updated, deleted, run-state
// and action-state events for the changes it writes; callers append the
// others (and any extra explanation) through Batch.Events.
const (
	EventCreated     EventType = "created"
	EventUpdated     EventType = "updated"
	EventDeleted     EventType = "deleted"
	EventRunState    EventType = "run-state"
	EventActionState EventType = "action-state"
	EventBMC         EventType = "bmc"
	EventSync        EventType = "sync"
	EventError       EventType = "error"
	// EventNetboot is a machine-facing answer: the iPXE script a machine
	// was served, and why.
	EventNetboot EventType = "netboot"
	// EventAgent says what a Tinkerbell agent was refused, or that its
	// report was stale and changed nothing.
	EventAgent EventType = "agent"
)

// Actor says who caused a change: "git", "reconciler", "api:<user>" or
// "worker:<hardware>". It is a string so that events read well as JSON.
type Actor string

// Actors that are not people.
const (
	ActorGit        Actor = "git"
	ActorReconciler Actor = "reconciler"
)

// APIUser returns the actor for an API caller authenticated as user.
func APIUser(user string) Actor { return Actor("api:" + user) }

// Worker returns the actor for the worker running on hardware.
func Worker(hardware string) Actor { return Actor("worker:" + hardware) }

// IsAPI reports whether the actor is an API caller.
func (a Actor) IsAPI() bool { return strings.HasPrefix(string(a), "api:") }

// Event is one entry of the event log. Seq is assigned by the store from a
// store-wide counter when the event is written: it starts at 1, grows by one
// per event and never repeats, also across restarts and retention.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type EventType `json:"type"`

	// Kind, Namespace and Name name the object the event is about; empty
	// for store-wide events (a sync attempt).
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Run is the run number for run-state and action-state events.
	Run int `json:"run,omitempty"`
	// Action is the action name for action-state events.
	Action string `json:"action,omitempty"`
	// State is the run's state (run-state events) or the action's
	// (action-state events) after the change, so a follower needs no
	// parsing of Message.
	State RunState `json:"state,omitempty"`
	// Attempt is the action's attempt for action-state events.
	Attempt int `json:"attempt,omitempty"`
	// ResourceVersion is the version the change produced (for deletions,
	// the last version of the object).
	ResourceVersion uint64 `json:"resourceVersion,omitempty"`

	Message  string `json:"message"`
	Revision string `json:"revision,omitempty"`
	Actor    Actor  `json:"actor"`
	// Author and Committer name the people of the Git commit that caused
	// the event ("Name <email>", from the commit object), when a Git
	// revision caused it: the actor "git" says how a change arrived, these
	// say whose change it was.
	Author    string `json:"author,omitempty"`
	Committer string `json:"committer,omitempty"`
}

// EventFilter selects events; empty fields match everything.
type EventFilter struct {
	Kind      string
	Namespace string
	Name      string
	Types     []EventType
}

// Matches reports whether ev passes the filter. Namespace is compared only
// when Name is set or Namespace is not empty, so that filtering by name alone
// finds the object in the empty namespace.
func (f EventFilter) Matches(ev Event) bool {
	if f.Kind != "" && ev.Kind != f.Kind {
		return false
	}
	if (f.Name != "" || f.Namespace != "") && ev.Namespace != f.Namespace {
		return false
	}
	if f.Name != "" && ev.Name != f.Name {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, ev.Type) {
		return false
	}
	return true
}

// EventQuery selects events for Store.Events.
type EventQuery struct {
	// From is the first sequence number to consider. Ascending, 0 means the
	// oldest retained event and a From below it is ENOTFOUND (events the
	// caller asked for are gone). Descending, 0 means the newest.
	From uint64
	// Descending walks from From towards older events, for "what happened
	// lately" queries.
	Descending bool
	Filter     EventFilter
	// Limit caps the number of events returned; 0 means 1,000, because an
	// unbounded scan of the log is never what a caller wants.
	Limit int
}

// EventBounds describes the retained event log.
type EventBounds struct {
	// Oldest is the sequence number of the oldest retained event;
	// Latest+1 when none is retained.
	Oldest uint64
	// Latest is the sequence number of the newest event, 0 if there was
	// never one.
	Latest uint64
}

// Watcher is a live subscription to the event log, from Store.Watch.
type Watcher interface {
	// Events delivers matching events in sequence order with no gaps. It is
	// closed when the watch ends; Err then says why.
	Events() <-chan Event
	// Err is nil while the watch runs and after Close; otherwise it is the
	// context's error, an ENOTFOUND error if the watcher fell so far behind
	// that retention removed events it had not read yet, or an EINTERNAL
	// error if the store closed.
	Err() error
	// Close ends the watch and waits until its resources are released.
	Close() error
}
