package api

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// TestKeySet follows a set through additions and removals across the
// slice-to-map boundary against a plain map.
func TestKeySet(t *testing.T) {
	key := func(i int) state.ObjectKey {
		return state.ObjectKey{Kind: state.KindWorkflow, Namespace: "ns", Name: fmt.Sprintf("wf-%02d", i)}
	}
	m := map[string]*keySet{}
	want := map[state.ObjectKey]struct{}{}
	check := func(step string) {
		t.Helper()
		got := slices.Collect(m["mac"].all())
		require.ElementsMatch(t, slices.Collect(maps.Keys(want)), got, step)
		_, present := m["mac"]
		require.Equal(t, len(want) > 0, present, "%s: an empty set is dropped", step)
	}
	check("empty")
	for i := range 20 {
		addTo(m, "mac", key(i))
		addTo(m, "mac", key(i)) // twice: still one
		want[key(i)] = struct{}{}
		check(fmt.Sprintf("add %d", i))
	}
	require.NotNil(t, m["mac"].many, "20 keys are a map")
	for i := range 20 {
		removeFrom(m, "mac", key(i))
		removeFrom(m, "mac", key(99)) // never added
		delete(want, key(i))
		check(fmt.Sprintf("remove %d", i))
	}
	for _, i := range []int{3, 1, 2} {
		addTo(m, "mac", key(i))
		want[key(i)] = struct{}{}
	}
	check("small again")
	require.Nil(t, m["mac"].many)
	removeFrom(m, "mac", key(1))
	delete(want, key(1))
	check("remove from a slice")
	var stop int
	for range m["mac"].all() {
		stop++
		break
	}
	require.Equal(t, 1, stop, "all stops when asked")
}
