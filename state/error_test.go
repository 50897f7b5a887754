package state_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func TestErrorHelpers(t *testing.T) {
	err := state.Errorf(state.ECONFLICT, "%s: resourceVersion %d is stale", "Hardware/node-01", 3)
	require.Equal(t, "conflict: Hardware/node-01: resourceVersion 3 is stale", err.Error())

	for _, tt := range []struct {
		name string
		err  error
		code string
		msg  string
	}{
		{"Nil", nil, "", ""},
		{"Coded", err, state.ECONFLICT, "Hardware/node-01: resourceVersion 3 is stale"},
		{"Wrapped", fmt.Errorf("apply: %w", err), state.ECONFLICT, "Hardware/node-01: resourceVersion 3 is stale"},
		{"Uncoded", errors.New("disk on fire at /var/lib/x"), state.EINTERNAL, "Internal error."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.code, state.ErrorCode(tt.err))
			require.Equal(t, tt.msg, state.ErrorMessage(tt.err))
		})
	}
}
