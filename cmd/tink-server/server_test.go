package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// MustRunMain starts tink-server on a temp data dir and port 0.
func MustRunMain(tb testing.TB, repo string, args ...string) *Main {
	tb.Helper()
	m := NewMain(io.Discard, io.Discard)
	require.NoError(tb, m.ParseFlags(append([]string{"--listen", "127.0.0.1:0", "--data-dir", tb.TempDir(), "--repo", repo}, args...)))
	require.NoError(tb, m.Open(context.Background()))
	tb.Cleanup(func() { require.NoError(tb, m.Close()) })
	return m
}

func get(t *testing.T, m *Main, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	return resp.StatusCode, doc
}

func waitReady(t *testing.T, m *Main) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + m.Addr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

// TestServerAppliesExampleRepo: what `make run` does, on a copy of
// examples/repo; an edit to a file is reconciled within seconds.
func TestServerAppliesExampleRepo(t *testing.T) {
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	m := MustRunMain(t, repo)
	waitReady(t, m)
	code, doc := get(t, m, "/v1/status")
	require.Equal(t, http.StatusOK, code)
	st := doc["sync"].(map[string]any)
	require.Empty(t, st["errors"])
	applied := st["lastAppliedRevision"].(string)
	require.Contains(t, applied, "dir@sha256:")
	objs, err := m.Store.ListObjects(context.Background(), stateQueryAll())
	require.NoError(t, err)
	require.Len(t, objs.Objects, 7)

	// Break a file: the status shows the error and the old revision stays.
	hw := filepath.Join(repo, "hardware", "node-01.yaml")
	orig, err := os.ReadFile(hw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(hw, append(orig, []byte("  bogus: 1\n")...), 0o644))
	require.Eventually(t, func() bool {
		_, doc = get(t, m, "/v1/status")
		st = doc["sync"].(map[string]any)
		return len(st["errors"].([]any)) > 0
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, applied, st["lastAppliedRevision"])
	errs := st["errors"].([]any)
	require.Equal(t, "hardware/node-01.yaml", errs[0].(map[string]any)["file"])

	// Fix it: applied again.
	require.NoError(t, os.WriteFile(hw, orig, 0o644))
	require.Eventually(t, func() bool {
		_, doc = get(t, m, "/v1/status")
		st = doc["sync"].(map[string]any)
		return len(st["errors"].([]any)) == 0
	}, 5*time.Second, 20*time.Millisecond)
}

func TestServerNeedsRepo(t *testing.T) {
	m := NewMain(io.Discard, io.Discard)
	require.EqualError(t, m.ParseFlags(nil), "--repo is required")
}

func TestServerRefusesLockedDataDir(t *testing.T) {
	repo := filepath.Join("..", "..", "examples", "repo")
	dir := t.TempDir()
	first := NewMain(io.Discard, io.Discard)
	require.NoError(t, first.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", dir, "--repo", repo}))
	require.NoError(t, first.Open(context.Background()))
	defer first.Close()
	second := NewMain(io.Discard, io.Discard)
	require.NoError(t, second.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", dir, "--repo", repo}))
	err := second.Open(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), dir)
}

func stateQueryAll() state.ObjectQuery { return state.ObjectQuery{} }
