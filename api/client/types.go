package client

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tinkops/tinkops/state"
)

// APIVersion is the group/version of the objects the API serves; it is
// Tinkerbell's, so `kubectl get -o yaml` output and tinkops output look alike.
const APIVersion = "tinkerbell.org/v1alpha1"

// Resource is a collection of the API: the last part of its path.
type Resource string

// The collections the API serves.
const (
	Hardware  Resource = "hardware"
	Templates Resource = "templates"
	Workflows Resource = "workflows"
)

// Kind returns the kind of the objects in the collection.
func (r Resource) Kind() string {
	switch r {
	case Hardware:
		return state.KindHardware
	case Templates:
		return state.KindTemplate
	case Workflows:
		return state.KindWorkflow
	}
	return ""
}

// Noun is the collection's name in messages: "hardware", "template", "workflow".
func (r Resource) Noun() string {
	return strings.ToLower(r.Kind())
}

// Object is one object as the API shows it: Kubernetes' shape (so manifests
// round-trip), with a read-only status holding the server's bookkeeping.
// status is ignored when an object is sent to the server.
type Object struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ObjectMeta      `json:"metadata"`
	Spec       json.RawMessage `json:"spec,omitempty"`
	Status     *ObjectStatus   `json:"status,omitempty"`
}

// ObjectMeta is the object's metadata. ResourceVersion is a decimal string,
// as in Kubernetes: send back the one you read to update the object; the
// server refuses the update (409) if the object moved on since.
type ObjectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
}

// ObjectStatus is what the server knows about an object beyond its spec.
type ObjectStatus struct {
	// Source is "git" or "api": who owns the object.
	Source string `json:"source"`
	// Revision is the Git revision the object was last applied from.
	Revision string `json:"revision,omitempty"`
	// File is the repository file that declares the object.
	File      string    `json:"file,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Override is set when an API caller changed a Git-managed object; Drift
	// lists the spec fields that then differ from Git.
	Override *Override `json:"override,omitempty"`
	Drift    []string  `json:"drift,omitempty"`
	// Run is a workflow's latest run.
	Run *Run `json:"run,omitempty"`
	// Workflow is, for hardware, the workflow run that last ran (or runs)
	// on it.
	Workflow *HardwareWorkflow `json:"workflow,omitempty"`
	// Runtime is the runtime state the server keeps about the object (for a
	// workflow, lastRun), as stored.
	Runtime json.RawMessage `json:"runtime,omitempty"`
	// AllowPXE is, for hardware, the netboot permission in effect when a
	// run with toggleAllowNetboot set it (true during and after a failed
	// run, false once a run succeeded); nil leaves the declared
	// interfaces[].netboot.allowPXE in effect. DHCP and iPXE services read
	// it here.
	AllowPXE *bool `json:"allowPXE,omitempty"`
	// Power is, for hardware with a BMC, the power state last read.
	Power *PowerStatus `json:"power,omitempty"`
}

// PowerStatus is a machine's power state as its BMC last reported it.
type PowerStatus struct {
	// State is on, off or unknown.
	State string `json:"state"`
	// CheckedAt is when the BMC answered (zero if it never did).
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// Error is the last BMC error (a missing secret, no answer), if the
	// last call failed.
	Error string `json:"error,omitempty"`
}

// PowerRequest is the body of POST /v1/hardware/{name}/power.
type PowerRequest struct {
	// Action is on, off, cycle, reset, soft or status.
	Action string `json:"action"`
}

// BootDeviceRequest is the body of POST /v1/hardware/{name}/bootdevice.
type BootDeviceRequest struct {
	// Device is pxe, disk, cdrom or bios.
	Device string `json:"device"`
	// Persistent keeps the device for every boot; false sets it once.
	Persistent bool `json:"persistent,omitempty"`
}

// BMCResult is what a power or boot-device override did.
type BMCResult struct {
	Hardware string `json:"hardware"`
	Action   string `json:"action"`
	// Power is the power state after the action (on, off, unknown).
	Power string `json:"power,omitempty"`
	// Provider is the bmclib provider that answered (ipmitool, gofish).
	Provider string  `json:"provider,omitempty"`
	Seconds  float64 `json:"seconds"`
	Attempts int     `json:"attempts,omitempty"`
}

// Override records an API change to a Git-managed object.
type Override struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
	// GitSpec is the spec Git declares, to compare with the spec in effect.
	GitSpec json.RawMessage `json:"gitSpec,omitempty"`
}

// Run summarises one workflow run. Actions is filled when one workflow is
// read, not in lists. Rendered commands and environments are never shown:
// they may hold a template's secrets.
type Run struct {
	Number   int    `json:"number"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Template string `json:"template,omitempty"`
	Hardware string `json:"hardware,omitempty"`
	Revision string `json:"revision,omitempty"`
	// CurrentAction names the action running or next to run; empty once
	// all are done.
	CurrentAction string `json:"currentAction,omitempty"`
	// CurrentActionStartedAt is when the current action started, zero if
	// it has not.
	CurrentActionStartedAt time.Time   `json:"currentActionStartedAt,omitzero"`
	ActionsDone            int         `json:"actionsDone"`
	ActionsTotal           int         `json:"actionsTotal"`
	CreatedAt              time.Time   `json:"createdAt"`
	StartedAt              time.Time   `json:"startedAt,omitzero"`
	FinishedAt             time.Time   `json:"finishedAt,omitzero"`
	Deadline               time.Time   `json:"deadline,omitzero"`
	Actions                []RunAction `json:"actions,omitempty"`
}

// RunAction is one action of a run and how it went.
type RunAction struct {
	Task       string    `json:"task"`
	Name       string    `json:"name"`
	Image      string    `json:"image"`
	Worker     string    `json:"worker"`
	State      string    `json:"state"`
	Attempt    int       `json:"attempt,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Message    string    `json:"message,omitempty"`
}

// HardwareWorkflow names the workflow run that last ran on a machine.
type HardwareWorkflow struct {
	Name  string `json:"name"`
	Run   int    `json:"run"`
	State string `json:"state"`
}

// List is one page of a collection. Metadata.Continue fetches the next page;
// it is empty on the last.
type List struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   ListMeta `json:"metadata"`
	Items      []Object `json:"items"`
}

// ListMeta is a list's metadata.
type ListMeta struct {
	Continue string `json:"continue,omitempty"`
}

// Deleted answers a deletion.
type Deleted struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Warnings say what follows (Git re-creates a Git-managed object).
	Warnings []string `json:"warnings,omitempty"`
}

// EventList is a page of the event log, oldest first. Ask for the next page
// with since set to the Seq of the last item; Latest is the newest event in
// the log when the page was read.
type EventList struct {
	Items  []state.Event `json:"items"`
	Latest uint64        `json:"latest"`
}

// StreamEnd is the last message of a workflow's event stream: the run that
// ended and how.
type StreamEnd struct {
	Namespace string `json:"namespace,omitempty"`
	Workflow  string `json:"workflow"`
	Run       int    `json:"run"`
	State     string `json:"state"`
}

// Status is the server's overall state: where Git stands, what the store
// holds, and what drifts from Git.
type Status struct {
	Sync SyncStatus `json:"sync"`
	// Ready is false until the first sync finished or failed.
	Ready bool `json:"ready"`
	// Objects counts objects by kind, then by source (git, api).
	Objects map[string]map[string]int `json:"objects"`
	// Workflows counts workflows by the state of their latest run; a
	// workflow that never ran counts as NONE.
	Workflows map[string]int `json:"workflows"`
	// Drift lists Git-managed objects changed through the API.
	Drift  []Drift     `json:"drift"`
	Events EventBounds `json:"events"`
	// Source is where the Git source (or watched directory) stands: a
	// remote that does not answer or refuses the credentials shows here
	// while the last good revision stays applied.
	Source *SourceStatus `json:"source,omitempty"`
	// Replica says which server answered and whether it is the leader,
	// when several servers share one store (--store postgres).
	Replica *ReplicaStatus `json:"replica,omitempty"`
}

// ReplicaStatus is one replica of several on a shared store.
type ReplicaStatus struct {
	Name string `json:"name"`
	// Leader is true on the one replica that runs the Git sync, the
	// timers, BMC actions and prune.
	Leader bool `json:"leader"`
}

// SourceStatus is the Git source's own state. Source never holds
// credentials (userinfo is removed from URLs), and LastError is scrubbed
// of them.
type SourceStatus struct {
	Source string `json:"source"`
	// Ref is what is followed: "branch main", "tag v1", "commit <hash>" or
	// "directory".
	Ref           string    `json:"ref"`
	Path          string    `json:"path,omitempty"`
	Revision      string    `json:"revision,omitempty"`
	LastSync      time.Time `json:"lastSync,omitzero"`
	LastFetch     time.Time `json:"lastFetch,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// Failures counts consecutive failed syncs; 0 once one succeeds.
	Failures int       `json:"failures,omitempty"`
	NextSync time.Time `json:"nextSync,omitzero"`
}

// SyncStatus says where Git stands.
type SyncStatus struct {
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	LastAppliedRevision   string `json:"lastAppliedRevision,omitempty"`
	// Errors are the errors of the last attempt; empty when it succeeded.
	Errors     []state.SyncError `json:"errors"`
	Suspended  bool              `json:"suspended"`
	LastSyncAt time.Time         `json:"lastSyncAt,omitzero"`
	// LastDuration is how long the last sync took, e.g. "1.2s".
	LastDuration string `json:"lastDuration,omitempty"`
	// Failure classifies why the last attempt applied nothing: "stalled"
	// (needs a person: fix the repository; not retried), "waiting"
	// (suspended) or "transient" (retried with backoff); empty once an
	// attempt applies. Reason says why, Retries counts transient failures
	// in a row and NextRetryAt is when the next attempt is due.
	Failure     string    `json:"failure,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Retries     int       `json:"retries,omitempty"`
	NextRetryAt time.Time `json:"nextRetryAt,omitzero"`
}

// Drift is one Git-managed object whose spec an API caller overrode.
type Drift struct {
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	Reason    string    `json:"reason,omitempty"`
	// Fields are the spec paths that differ from Git.
	Fields []string `json:"fields,omitempty"`
}

// EventBounds is the range of retained events.
type EventBounds struct {
	Oldest uint64 `json:"oldest"`
	Latest uint64 `json:"latest"`
}

// ErrorBody is the shape of every error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error is an error the server answered with. Code is one of the codes of
// package state (invalid, unauthorized, not_found, conflict, internal) or
// forbidden, too_large, unavailable, method_not_allowed; Details lists every
// problem of an invalid object with its field path.
type Error struct {
	// StatusCode is the HTTP status; it is not part of the JSON body.
	StatusCode int      `json:"-"`
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	Details    []Detail `json:"details,omitempty"`
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap exposes the code as a *state.Error, so that state.ErrorCode works on
// errors from the client as on errors from a store.
func (e *Error) Unwrap() error { return &state.Error{Code: e.Code, Message: e.Message} }

// Detail is one problem of a request. Line and Column refer to the request
// body.
type Detail struct {
	Path    string `json:"path,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
}

// String renders the detail as "path: message" (with line:column when known).
func (d Detail) String() string {
	s := ""
	if d.Line > 0 {
		s = strconv.Itoa(d.Line) + ":" + strconv.Itoa(d.Column) + ": "
	}
	if d.Path != "" {
		s += d.Path + ": "
	}
	return s + d.Message
}
