package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:42113", "ftp://x", "http://"} {
		_, err := client.New(bad, "", nil)
		require.Error(t, err, bad)
	}
	c, err := client.New("http://127.0.0.1:42113/", "", nil)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:42113", c.BaseURL())
}

func TestErrorsWithoutTheAPIShape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>upstream down</html>\nmore")
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "", nil)
	require.NoError(t, err)
	_, err = c.Status(context.Background())
	var ae *client.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadGateway, ae.StatusCode)
	require.Equal(t, state.EINTERNAL, state.ErrorCode(err))
	require.Equal(t, "server answered 502 Bad Gateway: <html>upstream down</html>", ae.Message)
}

// TestFollowResumesAfterDrop: a stream that breaks off is resumed from the
// last event delivered, so the caller sees every event once.
func TestFollowResumesAfterDrop(t *testing.T) {
	var mu sync.Mutex
	var sinces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sinces = append(sinces, r.URL.Query().Get("since"))
		n := len(sinces)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(seq int) {
			fmt.Fprintf(w, "id: %d\ndata: {\"seq\":%d,\"type\":\"run-state\",\"message\":\"m%d\"}\n\n", seq, seq, seq)
		}
		switch n {
		case 1:
			fmt.Fprint(w, "event: open\ndata: {\"since\":0}\n\n")
			send(1)
			send(2)
			fmt.Fprint(w, "data: {\"seq\":3,") // cut off mid-message
		case 2:
			fmt.Fprint(w, "event: open\ndata: {\"since\":2}\n\n: keep-alive\n\n")
			send(3)
			fmt.Fprint(w, "event: end\ndata: {\"workflow\":\"wf\",\"run\":1,\"state\":\"SUCCESS\"}\n\n")
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []uint64
	end, err := c.FollowWorkflow(ctx, "", "wf", client.EventOptions{}, func(ev state.Event) error {
		got = append(got, ev.Seq)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, &client.StreamEnd{Workflow: "wf", Run: 1, State: "SUCCESS"}, end)
	require.Equal(t, []uint64{1, 2, 3}, got)
	require.Equal(t, []string{"", "2"}, sinces)
}

func TestFollowReportsStreamErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: open\ndata: {\"since\":0}\n\nevent: error\ndata: {\"error\":{\"code\":\"not_found\",\"message\":\"workflow wf was deleted\"}}\n\n")
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "", nil)
	require.NoError(t, err)
	_, err = c.FollowWorkflow(context.Background(), "", "wf", client.EventOptions{}, func(state.Event) error { return nil })
	require.EqualError(t, err, "workflow wf was deleted")
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))
}

// TestFollowWaitsOutARestart: a server that is shutting down answers 503;
// the follow tries again and carries on.
func TestFollowWaitsOutARestart(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"unavailable","message":"the server is shutting down; reconnect in a moment"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: open\ndata: {\"since\":0}\n\nevent: end\ndata: {\"workflow\":\"wf\",\"run\":2,\"state\":\"FAILED\"}\n\n")
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "", nil)
	require.NoError(t, err)
	end, err := c.FollowWorkflow(context.Background(), "", "wf", client.EventOptions{}, func(state.Event) error { return nil })
	require.NoError(t, err)
	require.Equal(t, "FAILED", end.State)
	require.Equal(t, 2, calls)
}
