package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode decodes the body into v.
func (r response) decode(tb testing.TB, v any) {
	tb.Helper()
	require.NoError(tb, json.Unmarshal(r.Body, v), string(r.Body))
}

// object decodes the body as one object.
func (r response) object(tb testing.TB) client.Object {
	tb.Helper()
	var o client.Object
	r.decode(tb, &o)
	return o
}

// apiError decodes the body as the error shape and checks its status.
func (r response) apiError(tb testing.TB, status int, code string) *client.Error {
	tb.Helper()
	require.Equal(tb, status, r.Status, string(r.Body))
	var body client.ErrorBody
	r.decode(tb, &body)
	require.NotNil(tb, body.Error, string(r.Body))
	require.Equal(tb, code, body.Error.Code, string(r.Body))
	require.NotEmpty(tb, body.Error.Message)
	require.Equal(tb, "application/json", r.Header.Get("Content-Type"))
	return body.Error
}

// do sends a request with an optional bearer token and body.
func do(tb testing.TB, s *apitest.Server, method, path, token, body string) response {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	require.NoError(tb, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// mustClient returns a client for the server with a token.
func mustClient(tb testing.TB, s *apitest.Server, token string) *client.Client {
	tb.Helper()
	c, err := client.New(s.URL, token, nil)
	require.NoError(tb, err)
	return c
}

// seedFleet creates node-01 and node-02, the template basic and workflow
// wf-01 (node-01) through the API.
func seedFleet(tb testing.TB, s *apitest.Server, token string) {
	tb.Helper()
	for _, b := range []struct{ path, body string }{
		{"/v1/hardware", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")},
		{"/v1/hardware", apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12")},
		{"/v1/templates", apitest.TemplateYAML("basic")},
		{"/v1/workflows", apitest.WorkflowYAML("wf-01", "basic", "node-01", "52:54:00:10:00:01")},
	} {
		r := do(tb, s, http.MethodPost, b.path, token, b.body)
		require.Equal(tb, http.StatusCreated, r.Status, string(r.Body))
	}
}

// events returns every event in the log.
func events(tb testing.TB, s *apitest.Server) []state.Event {
	tb.Helper()
	evs, err := s.Store.Events(context.Background(), state.EventQuery{Limit: 100000})
	require.NoError(tb, err)
	return evs
}
