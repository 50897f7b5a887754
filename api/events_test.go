package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestEventsList(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	all := events(t, s)
	require.Len(t, all, 5) // 4 objects and run 1

	var page client.EventList
	do(t, s, http.MethodGet, "/v1/events", "", "").decode(t, &page)
	require.Equal(t, all, page.Items)
	require.Equal(t, all[4].Seq, page.Latest)

	do(t, s, http.MethodGet, fmt.Sprintf("/v1/events?since=%d&limit=2", all[0].Seq), "", "").decode(t, &page)
	require.Equal(t, all[1:3], page.Items)

	do(t, s, http.MethodGet, "/v1/events?kind=Hardware&name=node-02", "", "").decode(t, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, "Hardware/node-02 created through the API by anonymous", page.Items[0].Message)

	do(t, s, http.MethodGet, "/v1/events?type=run-state", "", "").decode(t, &page)
	require.Len(t, page.Items, 1)

	do(t, s, http.MethodGet, "/v1/workflows/wf-01/events", "", "").decode(t, &page)
	require.Len(t, page.Items, 2)
	require.Equal(t, state.EventCreated, page.Items[0].Type)
	require.Equal(t, state.EventRunState, page.Items[1].Type)

	do(t, s, http.MethodGet, "/v1/events?since=99999", "", "").decode(t, &page)
	require.Empty(t, page.Items)
	require.NotNil(t, page.Items)

	do(t, s, http.MethodGet, "/v1/events?since=-1", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
	do(t, s, http.MethodGet, "/v1/events?follow=yes", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
	do(t, s, http.MethodGet, "/v1/workflows/nope/events", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
}

func TestEventsRemovedByRetention(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithRetention(2))
	seedFleet(t, s, "")
	n, err := s.Store.CompactEvents(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, n)
	e := do(t, s, http.MethodGet, "/v1/events?since=1", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
	require.Contains(t, e.Message, "removed by retention")
	do(t, s, http.MethodGet, "/v1/events?since=1&follow=true", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)

	var page client.EventList
	do(t, s, http.MethodGet, "/v1/events?since=0", "", "").decode(t, &page)
	require.Len(t, page.Items, 2, "since=0 starts at the oldest retained event")
}

// runToSuccess drives wf-01's run 1 through n actions to SUCCESS, as the
// engine and a worker would, with one write per transition.
func runToSuccess(t *testing.T, s *apitest.Server, n int) {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("action-%02d", i)
	}
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State = state.RunRunning
		r.Actions = apitest.Actions("52:54:00:10:00:01", names...)
	})
	for i := range n {
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[i].State = state.RunRunning
			r.Actions[i].Attempt = 1
			r.CurrentAction = i
		})
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[i].State = state.RunSuccess
			r.CurrentAction = i + 1
			if i == n-1 {
				r.State = state.RunSuccess
			}
		})
	}
}

// collector gathers what a follower receives.
type collector struct {
	mu  sync.Mutex
	evs []state.Event
}

func (c *collector) add(ev state.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

// TestFollowersSeeEveryEventOnce is the acceptance test for streams:
// followers started before a workflow's events and followers started after
// them with since get every event, in order, once; workflow streams end
// with the run's final state.
func TestFollowersSeeEveryEventOnce(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	c := mustClient(t, s, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := events(t, s)
	since := before[len(before)-1].Seq

	var wg sync.WaitGroup
	var earlyWF, earlyAll collector
	var earlyEnd *client.StreamEnd
	var earlyErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		earlyEnd, earlyErr = c.FollowWorkflow(ctx, "", "wf-01", client.EventOptions{}, earlyWF.add)
	}()
	allCtx, stopAll := context.WithCancel(ctx)
	go func() {
		defer wg.Done()
		err := c.FollowEvents(allCtx, client.EventOptions{Since: &since}, earlyAll.add)
		if allCtx.Err() == nil {
			t.Errorf("FollowEvents ended early: %v", err)
		}
	}()

	const actions = 40
	runToSuccess(t, s, actions)
	log := events(t, s)
	var wantWF, wantAll []state.Event
	for _, ev := range log {
		if ev.Kind == state.KindWorkflow && ev.Name == "wf-01" {
			wantWF = append(wantWF, ev)
		}
		if ev.Seq > since {
			wantAll = append(wantAll, ev)
		}
	}
	require.Len(t, wantAll, 1+2*actions+1, "run RUNNING, two transitions per action, SUCCESS")

	require.Eventually(t, func() bool { return earlyAll.len() >= len(wantAll) }, 10*time.Second, 5*time.Millisecond)
	stopAll()
	wg.Wait()
	require.NoError(t, earlyErr)
	require.Equal(t, &client.StreamEnd{Workflow: "wf-01", Run: 1, State: "SUCCESS"}, earlyEnd)
	require.Equal(t, wantWF, earlyWF.evs, "the early workflow follower saw every event once, in order")
	require.Equal(t, wantAll, earlyAll.evs, "the early log follower saw every event once, in order")

	// Started after the run ended, with since: the same events, then the end.
	var lateWF collector
	end, err := c.FollowWorkflow(ctx, "", "wf-01", client.EventOptions{Since: &since}, lateWF.add)
	require.NoError(t, err)
	require.Equal(t, "SUCCESS", end.State)
	require.Equal(t, wantWF[2:], lateWF.evs, "the late follower saw the events after since")

	var lateAll collector
	lateCtx, stopLate := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.FollowEvents(lateCtx, client.EventOptions{Since: &since}, lateAll.add) }()
	require.Eventually(t, func() bool { return lateAll.len() >= len(wantAll) }, 10*time.Second, 5*time.Millisecond)
	stopLate()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Equal(t, wantAll, lateAll.evs)
}

func TestFollowFromNow(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	c := mustClient(t, s, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got collector
	done := make(chan error, 1)
	go func() {
		done <- c.FollowEvents(ctx, client.EventOptions{Types: []state.EventType{state.EventSync}}, got.add)
	}()
	// Without since the stream starts now: mark until the follower sees a
	// mark, then every later event must arrive.
	require.Eventually(t, func() bool {
		_, err := s.Store.Apply(ctx, &state.Batch{Actor: "test", Events: []state.Event{{Type: state.EventSync, Message: "mark"}}})
		require.NoError(t, err)
		return got.len() > 0
	}, 5*time.Second, 20*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	for _, ev := range got.evs {
		require.Equal(t, "mark", ev.Message)
	}
	require.Greater(t, got.evs[0].Seq, uint64(5), "history before the follow is not replayed")
}

func TestFollowAfterRetryWaitsForTheNewEnd(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State = state.RunFailed
		r.Actions = apitest.Actions("52:54:00:10:00:01", "a")
		r.Actions[0].State = state.RunFailed
	})
	c := mustClient(t, s, "")
	_, err := c.Retry(context.Background(), "", "wf-01", false)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		end *client.StreamEnd
		err error
	}
	done := make(chan result, 1)
	var got collector
	go func() {
		end, err := c.FollowWorkflow(ctx, "", "wf-01", client.EventOptions{}, got.add)
		done <- result{end, err}
	}()
	// The history holds run 1 FAILED; the follow must not end on it.
	require.Eventually(t, func() bool { return got.len() >= 4 }, 5*time.Second, 5*time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("the follow ended on the old end: %+v %v", r.end, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
		r.State = state.RunSuccess
		r.Actions[0].State = state.RunSuccess
		r.CurrentAction = 1
	})
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, "SUCCESS", r.end.State)
}

func TestFollowEnds(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	c := mustClient(t, s, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		end *client.StreamEnd
		err error
	}
	follow := func(name string, got *collector) chan result {
		done := make(chan result, 1)
		go func() {
			end, err := c.FollowWorkflow(ctx, "", name, client.EventOptions{}, got.add)
			done <- result{end, err}
		}()
		return done
	}

	t.Run("Cancelled", func(t *testing.T) {
		var got collector
		done := follow("wf-01", &got)
		require.Eventually(t, func() bool { return got.len() == 2 }, 5*time.Second, 5*time.Millisecond)
		_, err := c.Cancel(ctx, "", "wf-01")
		require.NoError(t, err)
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, "CANCELLED", r.end.State)
	})

	t.Run("ErrDeleted", func(t *testing.T) {
		body := apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02") + "  disabled: true\n"
		require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/workflows", "", body).Status)
		var got collector
		done := follow("wf-02", &got)
		require.Eventually(t, func() bool { return got.len() == 1 }, 5*time.Second, 5*time.Millisecond)
		require.Equal(t, http.StatusOK, do(t, s, http.MethodDelete, "/v1/workflows/wf-02", "", "").Status)
		r := <-done
		require.Nil(t, r.end)
		require.Equal(t, state.ENOTFOUND, state.ErrorCode(r.err))
		require.EqualError(t, r.err, "workflow wf-02 was deleted")
	})

	t.Run("OldDeletionIsHistory", func(t *testing.T) {
		body := apitest.WorkflowYAML("wf-02", "basic", "node-02", "52:54:00:10:00:02")
		require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/workflows", "", body).Status)
		var got collector
		done := follow("wf-02", &got)
		require.Eventually(t, func() bool { return got.len() == 4 }, 5*time.Second, 5*time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("the follow ended on an old deletion: %+v %v", r.end, r.err)
		case <-time.After(100 * time.Millisecond):
		}
		_, err := c.Cancel(ctx, "", "wf-02")
		require.NoError(t, err)
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, "CANCELLED", r.end.State)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		var got collector
		r := <-follow("wf-09", &got)
		require.Equal(t, state.ENOTFOUND, state.ErrorCode(r.err))
	})
}

func TestStreamWireFormat(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithKeepAlive(30*time.Millisecond))
	seedFleet(t, s, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/events?follow=true&since=3", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == ": keep-alive" {
			break
		}
	}
	text := strings.Join(lines, "\n")
	require.True(t, strings.HasPrefix(text, "event: open\ndata: {\"since\":3}\n\nid: 4\ndata: {\"seq\":4,"), text)
	require.Contains(t, text, "\n\nid: 5\ndata: {\"seq\":5,")
	require.True(t, strings.HasSuffix(text, "\n\n: keep-alive"), text)
}

func TestCloseEndsStreams(t *testing.T) {
	s := apitest.MustRunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/events?follow=true", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	s.API.Close()
	_, err = bufio.NewReader(resp.Body).ReadString(0)
	require.Error(t, err, "the stream ends once the server closes")

	e := do(t, s, http.MethodGet, "/v1/events?follow=true", "", "").apiError(t, http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, "the server is shutting down; reconnect in a moment", e.Message)
	require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, "/v1/events", "", "").Status, "requests that end on their own are still served")
}
