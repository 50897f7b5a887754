package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state/postgres/pgtest"
)

// TestServer starts a cluster, reaches it with the password over TCP, and
// keeps committed data across pg_ctl restart.
func TestServer(t *testing.T) {
	s := pgtest.Start(t)
	dsn := s.NewDatabase(t)
	ctx := context.Background()

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	s.Restart(t)
	conn, err = pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT n FROM kept").Scan(&n))
	require.Equal(t, 42, n)

	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.Password = "wrong"
	_, err = pgx.ConnectConfig(ctx, cfg)
	require.Error(t, err, "TCP connections must authenticate")
}
