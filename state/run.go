package state

import (
	"fmt"
	"time"
)

// RunState is the state of a workflow run or of one of its actions.
type RunState string

// Run states. A run goes PENDING -> PREPARING (BMC boot actions) -> RUNNING
// -> SUCCESS | FAILED | TIMEOUT, or to CANCELLED from any non-terminal state.
// Actions use the same names (without PREPARING), as Tinkerbell's do.
const (
	RunPending   RunState = "PENDING"
	RunPreparing RunState = "PREPARING"
	RunRunning   RunState = "RUNNING"
	RunSuccess   RunState = "SUCCESS"
	RunFailed    RunState = "FAILED"
	RunTimeout   RunState = "TIMEOUT"
	RunCancelled RunState = "CANCELLED"
)

// Valid reports whether s is one of the run states.
func (s RunState) Valid() bool {
	switch s {
	case RunPending, RunPreparing, RunRunning, RunSuccess, RunFailed, RunTimeout, RunCancelled:
		return true
	}
	return false
}

// Terminal reports whether nothing more happens to a run or action in state s
// (unless an operator retries it).
func (s RunState) Terminal() bool {
	switch s {
	case RunSuccess, RunFailed, RunTimeout, RunCancelled:
		return true
	}
	return false
}

// RunKey names one run of a workflow. Run numbers start at 1 and grow by one
// each time the workflow is run again.
type RunKey struct {
	Namespace string `json:"namespace,omitempty"`
	Workflow  string `json:"workflow"`
	Number    int    `json:"number"`
}

// String returns "Workflow/name#3" (with the namespace when there is one), the
// form used in every message about the run.
func (k RunKey) String() string {
	return fmt.Sprintf("%s#%d", ObjectKey{Kind: KindWorkflow, Namespace: k.Namespace, Name: k.Workflow}, k.Number)
}

// Validate reports an EINVALID error if the key cannot name a run.
func (k RunKey) Validate() error {
	if err := (ObjectKey{Kind: KindWorkflow, Namespace: k.Namespace, Name: k.Workflow}).Validate(); err != nil {
		return err
	}
	if k.Number < 1 {
		return Errorf(EINVALID, "%s: run number must be at least 1", k)
	}
	return nil
}

// WorkflowRun is one execution of a workflow: the template as rendered when
// the run started (later template changes do not touch it), and where every
// action stands.
type WorkflowRun struct {
	Namespace string   `json:"namespace,omitempty"`
	Workflow  string   `json:"workflow"`
	Number    int      `json:"number"`
	State     RunState `json:"state"`

	// Template and Hardware name what the run was rendered from; Revision is
	// the Git revision of the workflow that started it.
	Template string `json:"template,omitempty"`
	Hardware string `json:"hardware,omitempty"`
	Revision string `json:"revision,omitempty"`

	// Machines lists the other hardware the run's tasks run on ("name" or
	// "namespace/name"), when a template's tasks name workers of several
	// machines (device_2 set to another machine's MAC): the run holds each
	// of them, as it holds Hardware, from its start until it ends.
	Machines []string `json:"machines,omitempty"`

	// Actions is the rendered action list, in execution order across tasks.
	Actions []RunAction `json:"actions"`
	// CurrentAction indexes Actions: the action running or next to run;
	// len(Actions) once all are done.
	CurrentAction int `json:"currentAction"`

	// GlobalTimeout is the template's global_timeout in seconds (0: none);
	// Deadline is when it expires, set when the run starts.
	GlobalTimeout int64     `json:"globalTimeout,omitempty"`
	Deadline      time.Time `json:"deadline,omitzero"`

	// Reason explains the last transition of State.
	Reason string `json:"reason,omitempty"`

	// AllowPXE is the netboot permission the run gives its hardware when
	// its workflow sets bootOptions.toggleAllowNetboot: true from the start
	// of the run, false once it succeeds (so the machine does not install
	// again on its next boot), still true after a failure (so it can be
	// retried); nil when the run does not toggle it. It is runtime state,
	// not the declared spec: DHCP and iPXE services read it through
	// /v1/hardware.
	AllowPXE *bool `json:"allowPXE,omitempty"`

	// ResourceVersion works as for Object: assigned on every write, and on
	// input 0 means "create" and anything else "must still be at this
	// version".
	ResourceVersion uint64    `json:"resourceVersion"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	StartedAt       time.Time `json:"startedAt,omitzero"`
	FinishedAt      time.Time `json:"finishedAt,omitzero"`
}

// Key returns the run's key.
func (r *WorkflowRun) Key() RunKey {
	return RunKey{Namespace: r.Namespace, Workflow: r.Workflow, Number: r.Number}
}

// Validate reports an EINVALID error naming the run if it cannot be stored.
func (r *WorkflowRun) Validate() error {
	key := r.Key()
	if err := key.Validate(); err != nil {
		return err
	}
	if !r.State.Valid() {
		return Errorf(EINVALID, "%s: unknown state %q", key, r.State)
	}
	if r.CurrentAction < 0 || r.CurrentAction > len(r.Actions) {
		return Errorf(EINVALID, "%s: current action %d out of range 0..%d", key, r.CurrentAction, len(r.Actions))
	}
	for i, a := range r.Actions {
		if a.Name == "" {
			return Errorf(EINVALID, "%s: action %d has no name", key, i)
		}
		if !a.State.Valid() || a.State == RunPreparing {
			return Errorf(EINVALID, "%s: action %s: unknown state %q", key, a.Name, a.State)
		}
	}
	return nil
}

// RunAction is one action of a run: what to execute (rendered from the
// template) and how it went.
type RunAction struct {
	Task        string            `json:"task"`
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Timeout     int64             `json:"timeout,omitempty"` // seconds, 0: none
	Command     []string          `json:"command,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
	Pid         string            `json:"pid,omitempty"`
	Retries     int               `json:"retries,omitempty"`
	// Background marks an action (the final reboot or kexec) that counts
	// as done once the worker reports it started.
	Background bool `json:"background,omitempty"`
	// Worker is the worker the action's task runs on (a MAC or hardware
	// name, from the template's worker field after rendering).
	Worker string `json:"worker"`

	State RunState `json:"state"`
	// Attempt counts executions of the action, starting at 1 when it first
	// runs; retries increment it.
	Attempt    int       `json:"attempt,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Deadline is when the running attempt times out.
	Deadline time.Time `json:"deadline,omitzero"`
	// Message is the last report about the action (from the worker or the
	// server's timers).
	Message string `json:"message,omitempty"`
}

// RunQuery selects runs for Store.ListRuns.
type RunQuery struct {
	// Workflow restricts the list to the runs of one workflow, in
	// Namespace (exactly, the empty namespace included).
	Workflow string
	// Namespace restricts the list to one namespace when Workflow is empty;
	// empty then means all namespaces.
	Namespace string
	// States keeps only runs in one of these states; empty keeps all.
	States []RunState
	// Limit caps the number of runs returned; 0 means no cap.
	Limit int
	// Continue is the token of the previous page. Runs come in key order
	// (namespace, workflow, number).
	Continue string
}

// RunPage is one page of Store.ListRuns.
type RunPage struct {
	Runs []*WorkflowRun
	// Continue fetches the next page; empty when there is none.
	Continue string
}
