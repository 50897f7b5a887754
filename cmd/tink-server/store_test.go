package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/state/postgres"
	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// dsnFile writes dsn to a file as a mounted Secret would hold it.
func dsnFile(t *testing.T, dsn string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "dsn")
	require.NoError(t, os.WriteFile(f, []byte(dsn+"\n"), 0o600))
	return f
}

func readyz(t *testing.T, m *Main) int {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServerOnPostgres runs the example repository on --store postgres:
// it is applied into the database, readiness follows the database's
// reachability (false while it is stopped, true again without a restart of
// the server), and the password shows nowhere: not in logs, status or
// metrics.
func TestServerOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))
	logs := &apitest.Buffer{}
	m := NewMain(io.Discard, logs)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--repo", repo,
		"--store", "postgres", "--postgres-dsn-file", dsnFile(t, dsn), "--log-format", "json"}))
	require.NoError(t, m.Open(context.Background()))
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	_, ok := m.Store.(*postgres.Store)
	require.True(t, ok, "Main holds the PostgreSQL store")
	waitReady(t, m)

	objs, err := m.Store.ListObjects(context.Background(), stateQueryAll())
	require.NoError(t, err)
	require.Len(t, objs.Objects, 7)
	// What the server wrote is in the database, not only in the process.
	require.Equal(t, "7", pg.Exec(t, strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable"), "SELECT count(*) FROM tinkops.objects"))

	code, _ := get(t, m, "/v1/backup")
	require.Equal(t, http.StatusServiceUnavailable, code, "PostgreSQL is backed up with pg_dump, not through the API")

	pg.Stop(t)
	require.Eventually(t, func() bool { return readyz(t, m) == http.StatusServiceUnavailable }, 20*time.Second, 100*time.Millisecond,
		"not ready while the database is down")
	pg.Resume(t)
	require.Eventually(t, func() bool { return readyz(t, m) == http.StatusOK }, 30*time.Second, 100*time.Millisecond,
		"ready again once the database is back, without a restart")

	var body bytes.Buffer
	for _, path := range []string{"/v1/status", "/metrics"} {
		resp, err := http.Get("http://" + m.Addr() + path)
		require.NoError(t, err)
		_, _ = io.Copy(&body, resp.Body)
		resp.Body.Close()
	}
	require.NotContains(t, body.String(), pg.Password)
	require.NotContains(t, logs.String(), pg.Password)
	require.Contains(t, logs.String(), "state store unreachable", "the outage is logged")
}

// TestServerStoreFlags: the DSN comes from a file or TINK_POSTGRES_DSN,
// and a wrong combination is refused with an error naming the flag.
func TestServerStoreFlags(t *testing.T) {
	parse := func(env map[string]string, args ...string) error {
		m := NewMain(io.Discard, io.Discard)
		m.Getenv = func(k string) string { return env[k] }
		return m.ParseFlags(append([]string{"--repo", "."}, args...))
	}
	require.NoError(t, parse(nil))
	require.ErrorContains(t, parse(nil, "--store", "etcd"), `invalid value "etcd" for --store`)
	require.ErrorContains(t, parse(nil, "--postgres-dsn-file", "x"), "--postgres-dsn-file needs --store postgres")
	require.NoError(t, parse(map[string]string{"TINK_STORE": "postgres"}))

	_, err := postgresDSN("", func(string) string { return "" })
	require.ErrorContains(t, err, "--store postgres needs --postgres-dsn-file or TINK_POSTGRES_DSN")
	dsn, err := postgresDSN("", func(k string) string { return map[string]string{"TINK_POSTGRES_DSN": "postgres://u:p@h/db"}[k] })
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h/db", dsn)
	dsn, err = postgresDSN(dsnFile(t, "postgres://u:p@h/file"), func(string) string { return "postgres://u:p@h/env" })
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h/file", dsn, "the file wins")
}
