package state

import "time"

// WorkflowSetStatus is what a WorkflowSet is doing: counts by the state of
// each machine's latest run, the current wave and the failure budget. The
// reconciler works it out; the API and the CLI show it.
type WorkflowSetStatus struct {
	// Run is the set's spec.run: the rollout the counts are of.
	Run int64 `json:"run"`
	// Machines is how many machines the set owns a workflow for.
	Machines int `json:"machines"`
	// States counts the machines by the state of their latest run;
	// NOT_STARTED counts those without one.
	States      map[string]int `json:"states"`
	MaxInFlight int            `json:"maxInFlight"`
	MaxFailures int            `json:"maxFailures"`
	// Wave is the wave in progress (from 1; 0 before the first start) of
	// Waves, at maxInFlight machines a wave.
	Wave  int `json:"wave"`
	Waves int `json:"waves"`
	// Failed lists the machines whose failure counts against maxFailures.
	Failed []string `json:"failed,omitempty"`
	// FailureBudget is how many more failures the set tolerates before it
	// pauses (negative once failures passed it).
	FailureBudget int       `json:"failureBudget"`
	Paused        bool      `json:"paused"`
	PausedAt      time.Time `json:"pausedAt,omitzero"`
	// Reason says why the set is paused.
	Reason string `json:"reason,omitempty"`
}
