package state_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

func TestAllObjectsReadsEveryPage(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	for i := range 7 {
		_, err := st.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindHardware, Name: fmt.Sprintf("node-%02d", i), Source: state.SourceGit})
		require.NoError(t, err)
	}
	_, err = st.PutObject(ctx, state.ActorGit, &state.Object{Kind: state.KindTemplate, Name: "t", Source: state.SourceGit})
	require.NoError(t, err)

	all, err := state.AllObjects(ctx, st, state.ObjectQuery{Kind: state.KindHardware, Limit: 3})
	require.NoError(t, err)
	require.Len(t, all, 7)
	for i, o := range all {
		require.Equal(t, fmt.Sprintf("node-%02d", i), o.Name)
	}
	all, err = state.AllObjects(ctx, st, state.ObjectQuery{})
	require.NoError(t, err)
	require.Len(t, all, 8)
}
