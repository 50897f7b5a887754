package workflow_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestHardwareCacheFollowsChanges: the engine keeps the hardware workers
// name, and while it runs, a hardware changed, created or deleted in the
// store reaches it through the event log, not after an expiry: with
// expiry off, a new MAC, a removed MAC and a deleted machine are each
// seen, and an unchanged cache keeps answering.
func TestHardwareCacheFollowsChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := setup(t, 0)
	f.e.NeverExpireHardware()
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	id, err := f.e.Resolve(ctx, "node-01")
	require.NoError(t, err)
	require.Equal(t, "node-01", id.Metadata.Name)
	_, err = f.e.Resolve(ctx, "52:54:00:00:00:09")
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))

	// node-01 takes a second MAC: found by it; its record in the cache is
	// the new one.
	key := state.ObjectKey{Kind: state.KindHardware, Name: "node-01"}
	o, err := f.st.GetObject(ctx, key)
	require.NoError(t, err)
	o.Spec = json.RawMessage(`{"disks":[{"device":"/dev/sdb"}],"interfaces":[{"dhcp":{"mac":"52:54:00:00:00:01"}},{"dhcp":{"mac":"52:54:00:00:00:09"}}]}`)
	_, err = f.st.PutObject(ctx, state.APIUser("t"), o)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		hw, err := f.e.Resolve(ctx, "node-01")
		return err == nil && hw.Spec.Disks[0].Device == "/dev/sdb"
	}, 10*time.Second, 5*time.Millisecond, "the changed hardware is seen")
	require.Eventually(t, func() bool {
		hw, err := f.e.Resolve(ctx, "52:54:00:00:00:09")
		return err == nil && hw.Metadata.Name == "node-01"
	}, 10*time.Second, 5*time.Millisecond, "its new MAC names it")

	// The machine is deleted: no name or MAC finds it any more.
	require.NoError(t, f.st.DeleteObject(ctx, state.APIUser("t"), key, 0))
	require.Eventually(t, func() bool {
		_, err1 := f.e.Resolve(ctx, "node-01")
		_, err2 := f.e.Resolve(ctx, "52:54:00:00:00:01")
		return state.ErrorCode(err1) == state.ENOTFOUND && state.ErrorCode(err2) == state.ENOTFOUND
	}, 10*time.Second, 5*time.Millisecond, "the deleted hardware is gone")
}
