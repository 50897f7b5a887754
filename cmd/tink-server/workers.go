package main

import (
	"context"
	"time"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/schema"
)

// workers serves the API's worker endpoints with the workflow engine.
type workers struct{ e *workflow.Engine }

var _ api.Workers = workers{}

// Resolve names the hardware object a worker id (name, namespace/name or
// MAC) belongs to: namespace/name, or the name alone in the default
// namespace.
func (w workers) Resolve(ctx context.Context, id string) (string, error) {
	hw, err := w.e.Resolve(ctx, id)
	if err != nil {
		return "", err
	}
	return schema.Key{Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name}.String(), nil
}

// Next hands out the machine's next action.
func (w workers) Next(ctx context.Context, id string, wait time.Duration) (*client.WorkerAction, error) {
	return w.e.Next(ctx, id, wait)
}

// Report takes a worker's report.
func (w workers) Report(ctx context.Context, id string, r client.WorkerReport) error {
	_, err := w.e.Report(ctx, id, r)
	return err
}
