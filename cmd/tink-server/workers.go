package main

import (
	"context"
	"time"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
)

// workers serves the API's worker endpoints with the workflow engine.
type workers struct{ e *workflow.Engine }

var _ api.Workers = workers{}

// Resolve names the hardware a worker id (name or MAC) belongs to.
func (w workers) Resolve(ctx context.Context, id string) (string, error) {
	hw, err := w.e.Resolve(ctx, id)
	if err != nil {
		return "", err
	}
	return hw.Metadata.Name, nil
}

// Next hands out the machine's next action.
func (w workers) Next(ctx context.Context, id string, wait time.Duration) (*client.WorkerAction, error) {
	a, err := w.e.Next(ctx, id, wait)
	if err != nil || a == nil {
		return nil, err
	}
	return &client.WorkerAction{Namespace: a.Namespace, Workflow: a.Workflow, Run: a.Run, Task: a.Task, Action: a.Action,
		Attempt: a.Attempt, Name: a.Name, Image: a.Image, Command: a.Command, Environment: a.Environment,
		Volumes: a.Volumes, Pid: a.Pid, Timeout: a.Timeout, Background: a.Background, Deadline: a.Deadline}, nil
}

// Report takes a worker's report.
func (w workers) Report(ctx context.Context, id string, r client.WorkerReport) error {
	_, err := w.e.Report(ctx, id, workflow.Report{Namespace: r.Namespace, Workflow: r.Workflow, Run: r.Run, Action: r.Action,
		Attempt: r.Attempt, State: state.RunState(r.State), Message: r.Message, Started: r.Started, Finished: r.Finished})
	return err
}
