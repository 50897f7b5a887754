package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/worker"
)

func TestProcessRuntime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := &worker.Process{WorkDir: dir}
	out := filepath.Join(dir, "out.txt")

	res := p.Run(ctx, &worker.Action{Workflow: "wf", Run: 1, Name: "echo", Command: []string{"/bin/sh", "-c", `echo "$GREETING" >> ` + out + `; echo done`},
		Environment: map[string]string{"GREETING": "hello"}, Timeout: 10})
	require.Equal(t, "SUCCESS", res.State)
	require.Equal(t, "done\n", res.Message)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "hello\n", string(b))

	res = p.Run(ctx, &worker.Action{Workflow: "wf", Run: 1, Action: 1, Name: "fail", Command: []string{"/bin/sh", "-c", "echo oops >&2; exit 3"}, Timeout: 10})
	require.Equal(t, "FAILED", res.State)
	require.Equal(t, "oops\nexit status 3", res.Message)

	start := time.Now()
	res = p.Run(ctx, &worker.Action{Workflow: "wf", Run: 1, Action: 2, Name: "hang", Command: []string{"/bin/sh", "-c", "sleep 30 & sleep 30"}, Timeout: 1})
	require.Equal(t, "TIMEOUT", res.State)
	require.Less(t, time.Since(start), 5*time.Second, "the action and its children are killed")
	require.Contains(t, res.Message, "timed out after 1s")

	res = p.Run(ctx, &worker.Action{Workflow: "wf", Run: 1, Action: 3, Name: "big", Command: []string{"/bin/sh", "-c", "head -c 10000 /dev/zero | tr '\\0' a; echo END"}, Timeout: 10})
	require.Equal(t, "SUCCESS", res.State)
	require.Len(t, res.Message, worker.TailSize)
	require.True(t, strings.HasSuffix(res.Message, "aaaEND\n"))

	// Without a command, the image names an executable in ActionsDir.
	actions := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(actions, "disk-wipe"), []byte("#!/bin/sh\necho wiping $BLOCK_DEVICE\n"), 0o755))
	p.ActionsDir = actions
	res = p.Run(ctx, &worker.Action{Workflow: "wf", Run: 1, Action: 4, Name: "wipe", Image: "quay.io/tinkerbell/disk-wipe:v1", Environment: map[string]string{"BLOCK_DEVICE": "/dev/sda"}, Timeout: 10})
	require.Equal(t, "SUCCESS", res.State, res.Message)
	require.Equal(t, "wiping /dev/sda\n", res.Message)
}

// fakeServer hands out actions and records reports; it can be "down".
type fakeServer struct {
	mu      sync.Mutex
	actions []*worker.Action
	reports []worker.Report
	down    int // fail this many calls
	// withAnswer hands the next action out with the answer to a report
	// that ends an action, as the API does when asked; asks counts Next.
	withAnswer bool
	asks       int
	asksAt     []int // asks made before each report
}

var errDown = errors.New("connection refused")

func (s *fakeServer) Next(ctx context.Context, id string, wait time.Duration) (*worker.Action, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down > 0 {
		s.down--
		return nil, errDown
	}
	s.asks++
	if len(s.actions) == 0 {
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		s.mu.Lock()
		return nil, nil
	}
	a := s.actions[0]
	s.actions = s.actions[1:]
	return a, nil
}

func (s *fakeServer) Report(ctx context.Context, id string, r worker.Report) (*worker.Action, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down > 0 {
		s.down--
		return nil, errDown
	}
	s.reports = append(s.reports, r)
	s.asksAt = append(s.asksAt, s.asks)
	if s.withAnswer && r.State != "RUNNING" && len(s.actions) > 0 {
		a := s.actions[0]
		s.actions = s.actions[1:]
		return a, nil
	}
	return nil, nil
}

func (s *fakeServer) Rejected(err error) bool { return false }

func (s *fakeServer) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.reports {
		out = append(out, string(r.State))
	}
	return out
}

// TestWorkerRetriesReports: the server is down for a while; every report
// arrives once it is back, in order.
func TestWorkerRetriesReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &fakeServer{actions: []*worker.Action{
		{Workflow: "wf", Run: 1, Action: 0, Attempt: 1, Name: "a", Command: []string{"/bin/true"}, Timeout: 5},
		{Workflow: "wf", Run: 1, Action: 1, Attempt: 1, Name: "b", Command: []string{"/bin/false"}, Timeout: 5},
	}, down: 3}
	w := &worker.Worker{ID: "node-01", Server: srv, Runtime: &worker.Process{WorkDir: t.TempDir()}, WorkDir: t.TempDir(),
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Wait: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.Eventually(t, func() bool { return len(srv.states()) == 4 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"RUNNING", "SUCCESS", "RUNNING", "FAILED"}, srv.states())
	cancel()
	require.NoError(t, <-done)
}

// TestWorkerDeliversKeptReport: a report a previous worker process could
// not deliver is delivered by the next one.
func TestWorkerDeliversKeptReport(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pending-report.json"), []byte(`{"workflow":"wf","run":1,"action":2,"attempt":1,"state":"SUCCESS"}`), 0o600))
	srv := &fakeServer{}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker.Worker{ID: "node-01", Server: srv, Runtime: &worker.Process{WorkDir: t.TempDir()}, WorkDir: dir, Wait: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.Eventually(t, func() bool { return len(srv.states()) == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	require.Equal(t, 2, srv.reports[0].Action)
	_, err := os.Stat(filepath.Join(dir, "pending-report.json"))
	require.True(t, os.IsNotExist(err))
}

// TestWorkerRunsTheActionHandedWithTheAnswer: when the answer to a result
// carries the next action, the worker runs it without asking again: three
// actions, one ask.
func TestWorkerRunsTheActionHandedWithTheAnswer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &fakeServer{withAnswer: true, actions: []*worker.Action{
		{Workflow: "wf", Run: 1, Action: 0, Attempt: 1, Name: "a", Command: []string{"/bin/true"}, Timeout: 5},
		{Workflow: "wf", Run: 1, Action: 1, Attempt: 1, Name: "b", Command: []string{"/bin/true"}, Timeout: 5},
		{Workflow: "wf", Run: 1, Action: 2, Attempt: 1, Name: "c", Command: []string{"/bin/false"}, Timeout: 5},
	}}
	w := &worker.Worker{ID: "node-01", Server: srv, Runtime: &worker.Process{WorkDir: t.TempDir()}, WorkDir: t.TempDir(), Wait: time.Hour}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.Eventually(t, func() bool { return len(srv.states()) == 6 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"RUNNING", "SUCCESS", "RUNNING", "SUCCESS", "RUNNING", "FAILED"}, srv.states())
	for i, r := range srv.reports {
		require.Equal(t, i/2, r.Action, "report %d", i)
	}
	srv.mu.Lock()
	require.Equal(t, []int{1, 1, 1, 1, 1, 1}, srv.asksAt, "one ask, for the first action")
	srv.mu.Unlock()
	cancel()
	require.NoError(t, <-done)
}
