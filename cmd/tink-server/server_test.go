package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// MustRunMain starts tink-server on a temp data dir and port 0.
func MustRunMain(tb testing.TB, repo string) *Main {
	tb.Helper()
	m := NewMain(io.Discard, io.Discard)
	require.NoError(tb, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", tb.TempDir(), "--repo", repo}))
	require.NoError(tb, m.Open(context.Background()))
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

func getStatus(t *testing.T, m *Main) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr() + "/v1/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func TestServerReportsValidRepo(t *testing.T) {
	m := MustRunMain(t, filepath.Join("..", "..", "examples", "repo"))
	st := getStatus(t, m)
	require.Equal(t, true, st["valid"])
	require.Equal(t, map[string]any{"Hardware": 3.0, "Template": 2.0, "Workflow": 2.0, "Machine": 0.0}, st["counts"])
	resp, err := http.Get("http://" + m.Addr() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestServerReportsErrors(t *testing.T) {
	m := MustRunMain(t, filepath.Join("..", "..", "schema", "testdata", "invalid", "bad-mac"))
	st := getStatus(t, m)
	require.Equal(t, false, st["valid"])
	errs := st["errors"].([]any)
	require.Len(t, errs, 1)
	require.Equal(t, "hardware/node-02.yaml", errs[0].(map[string]any)["file"])
}

func TestServerNeedsRepo(t *testing.T) {
	m := NewMain(io.Discard, io.Discard)
	require.EqualError(t, m.ParseFlags(nil), "--repo is required")
}
