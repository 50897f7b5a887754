package workflow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/workflow"
	"github.com/tinkops/tinkops/state"
)

// gapStore is a real store on which another replica writes while this
// replica's engine reads its active runs: after the read, before it
// returns (once).
type gapStore struct {
	state.Store
	once  sync.Once
	write func()
}

func (s *gapStore) ListRuns(ctx context.Context, q state.RunQuery) (*state.RunPage, error) {
	page, err := s.Store.ListRuns(ctx, q)
	s.once.Do(s.write)
	return page, err
}

// TestFollowerSeesRunStartedWhileItLoaded: a replica that does not lead
// reads the active runs when it starts (the run is PENDING then) and the
// leader starts the run before the replica's watch of the event log
// begins. The replica still learns that the run is RUNNING, and its
// worker gets the action from it.
func TestFollowerSeesRunStartedWhileItLoaded(t *testing.T) {
	f := setup(t, 0, "wf-1")
	written := make(chan struct{})
	gap := &gapStore{Store: f.st, write: func() {
		f.e.Step(context.Background()) // the leader starts wf-1's run
		close(written)
	}}
	follower := workflow.New(workflow.Config{Store: gap, Now: f.clock.now,
		Leader: func() (context.Context, bool) { return nil, false }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- follower.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not read its active runs")
	}
	require.Equal(t, state.RunRunning, f.run(t, "wf-1", 1).State, "the leader started the run while the follower loaded")
	a, err := follower.Next(context.Background(), "52:54:00:00:00:01", 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, a, "the follower hands out the run's first action")
	require.Equal(t, "wf-1", a.Workflow)
	require.Equal(t, 0, a.Action)
	require.Equal(t, "wipe", a.Name)
}
