package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaxObjects: --max-objects reaches the loader. The example repository
// declares 7 objects: a limit of 6 refuses the revision with the loader's
// error and applies nothing, a limit of 7 applies it.
func TestMaxObjects(t *testing.T) {
	ctx := context.Background()
	repo := copyDir(t, filepath.Join("..", "..", "examples", "repo"))

	m := MustRunMain(t, repo, "--max-objects", "6")
	waitReady(t, m)
	st, err := m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.Empty(t, st.LastAppliedRevision)
	require.Len(t, st.Errors, 1, "%+v", st.Errors)
	require.Equal(t, "the repository declares more than 6 objects; split it or raise the limit", st.Errors[0].Message)

	m = MustRunMain(t, repo, "--max-objects", "7")
	waitReady(t, m)
	st, err = m.Store.SyncStatus(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, st.LastAppliedRevision)
	require.Empty(t, st.Errors)

	require.ErrorContains(t, NewMain(nil, nil).ParseFlags([]string{"--repo", repo, "--max-objects", "-1"}), "--max-objects must not be negative, got -1")
}
