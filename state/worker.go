package state

import "time"

// WorkerAction is an action handed to a machine's worker: the engine's
// assignment and the worker protocol's wire form are one type, so that
// neither side copies the other field by field (the API client aliases it).
type WorkerAction struct {
	Namespace   string            `json:"namespace,omitempty"`
	Workflow    string            `json:"workflow"`
	Run         int               `json:"run"`
	Task        string            `json:"task"`
	Action      int               `json:"action"` // index in the run's action list
	Attempt     int               `json:"attempt"`
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Command     []string          `json:"command,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
	Pid         string            `json:"pid,omitempty"`
	Timeout     int64             `json:"timeout,omitempty"`
	Background  bool              `json:"background,omitempty"`
	Deadline    time.Time         `json:"deadline,omitzero"`
}

// WorkerReport is what a worker says about an action, in the engine and on
// the wire alike.
type WorkerReport struct {
	Namespace string    `json:"namespace,omitempty"`
	Workflow  string    `json:"workflow"`
	Run       int       `json:"run"`
	Action    int       `json:"action"`
	Attempt   int       `json:"attempt"`
	State     RunState  `json:"state"` // RUNNING, SUCCESS, FAILED or TIMEOUT
	Message   string    `json:"message,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
}
