package state_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func TestParseSelector(t *testing.T) {
	labels := map[string]string{"rack": "r1", "gpu": "a100", "empty": ""}
	for _, tt := range []struct {
		in      string
		matches bool
		canon   string
	}{
		{"", true, ""},
		{"rack=r1", true, "rack=r1"},
		{" rack == r1 ", true, "rack=r1"},
		{"rack=r2", false, "rack=r2"},
		{"rack!=r2", true, "rack!=r2"},
		{"missing!=x", true, "missing!=x"},
		{"gpu", true, "gpu"},
		{"!gpu", false, "!gpu"},
		{"!missing", true, "!missing"},
		{"rack in (r1, r2)", true, "rack in (r1,r2)"},
		{"rack notin (r1)", false, "rack notin (r1)"},
		{"missing notin (a)", true, "missing notin (a)"},
		{"missing in (a)", false, "missing in (a)"},
		{"empty=", true, "empty="},
		{"rack=r1,gpu,site notin (fra)", true, "rack=r1,gpu,site notin (fra)"},
		{"rack=r1,gpu=h100", false, "rack=r1,gpu=h100"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			sel, err := state.ParseSelector(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.matches, sel.Matches(labels))
			require.Equal(t, tt.canon, sel.String())
			again, err := state.ParseSelector(sel.String())
			require.NoError(t, err)
			require.Equal(t, sel, again, "String round-trips")
		})
	}
}

func TestParseSelectorErrors(t *testing.T) {
	for _, in := range []string{
		"rack in (r1",
		"rack in ()",
		"rack in (a,,b)",
		"rack between (a)",
		"=r1",
		"a b=c",
		"rack=r1,",
		",",
		"rack=a=b",
		"!",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := state.ParseSelector(in)
			require.Error(t, err)
			require.Equal(t, state.EINVALID, state.ErrorCode(err))
			require.Contains(t, state.ErrorMessage(err), in)
		})
	}
}

func TestMatchLabels(t *testing.T) {
	sel := state.MatchLabels(map[string]string{"site": "ams", "rack": "r1"})
	require.Equal(t, "rack=r1,site=ams", sel.String(), "sorted, so it prints the same every time")
	require.True(t, sel.Matches(map[string]string{"site": "ams", "rack": "r1", "x": "y"}))
	require.False(t, sel.Matches(map[string]string{"site": "ams"}))
	require.True(t, state.Selector(nil).Matches(nil), "the zero Selector matches everything")
}
