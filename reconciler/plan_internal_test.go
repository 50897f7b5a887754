package reconciler

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/schema/schematest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestCreatedFieldsMatchSequential: the fields of new objects, computed
// over several goroutines for a large plan, are exactly diffObject's for
// each object, in its place; objects the store has get none.
func TestCreatedFieldsMatchSequential(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, content := range schematest.Fleet(2*parallelFields+100, 5) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	set, err := schema.NewLoader().Load(context.Background(), fsys)
	require.NoError(t, err)
	desired, err := desiredObjects(set, "main@sha1:1")
	require.NoError(t, err)
	require.Greater(t, len(desired), 4*parallelFields, "enough objects to share out")
	have := map[state.ObjectKey]*state.Object{}
	for i, d := range desired {
		if i%7 == 0 {
			have[d.Key()] = d
		}
	}
	got := createdFields(desired, have)
	require.Len(t, got, len(desired))
	for i, d := range desired {
		if have[d.Key()] != nil {
			require.Nil(t, got[i], "%s is in the store", d.Key())
			continue
		}
		want := diffObject(nil, d)
		require.NotEmpty(t, want)
		require.Equal(t, want, got[i], "%s", d.Key())
	}
}

// TestDesiredObjectsSharedOutInOrder: the stored forms of a set large
// enough to be encoded over several goroutines are, in eachObject's order,
// exactly ToState's for each object, with the sync's revision; a second
// sync takes every one from the cache.
func TestDesiredObjectsSharedOutInOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	fsys := fstest.MapFS{}
	for name, content := range schematest.Fleet(2*parallelFields+100, 5) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	set, err := schema.NewLoader().Load(context.Background(), fsys)
	require.NoError(t, err)
	var want []*state.Object
	require.NoError(t, eachObject(set, func(o schema.Object) error {
		so, err := ToState(o, state.SourceGit, "main@sha1:1")
		want = append(want, so)
		return err
	}))
	require.Greater(t, len(want), 4*parallelFields, "enough objects to share out")
	var c desiredCache
	for sync, rev := range []string{"main@sha1:1", "main@sha1:2"} {
		d, err := c.objects(set, rev)
		require.NoError(t, err)
		require.Len(t, d.objects, len(want))
		for i, w := range want {
			w := *w
			w.Revision = rev
			require.Equal(t, &w, d.objects[i], "object %d", i)
		}
		require.Equal(t, int64(len(want)), c.encoded.Load(), "sync %d: encoded once, then from the cache", sync+1)
	}
}

// TestDesiredCacheMatchesFresh: over syncs that change, add and remove
// files, the cached stored forms are exactly what encoding the set anew
// gives, and the objects the cache keeps beyond those in use stay within
// maxStale.
func TestDesiredCacheMatchesFresh(t *testing.T) {
	ctx := context.Background()
	loader := schema.NewLoader()
	var c desiredCache
	fsys := fleet(40)
	for i := range 300 {
		fsys = without(fsys)
		n := 1 + i%40
		name := fmt.Sprintf("hardware/node-%02d.yaml", n)
		switch i % 3 {
		case 0, 1: // an edit
			fsys[name] = &fstest.MapFile{Data: []byte(strings.Replace(string(fleet(40)[name].Data), fmt.Sprintf("node-%02d}", n), fmt.Sprintf("node-%02d, labels: {rev: r%d}}", n, i), 1))}
		case 2: // a workflow goes or comes back
			wf := fmt.Sprintf("workflows/wf-%02d.yaml", n)
			if _, ok := fsys[wf]; ok {
				fsys = without(fsys, wf)
			} else {
				fsys[wf] = fleet(40)[wf]
			}
		}
		s := snap(fmt.Sprintf("r%d", i), fsys)
		set, err := loader.Load(ctx, s.FS)
		require.NoError(t, err)
		got, err := c.objects(set, s.Revision)
		require.NoError(t, err)
		want, err := desiredObjects(set, s.Revision)
		require.NoError(t, err)
		require.Equal(t, want, got.objects, "sync %d", i)
		require.Len(t, got.ids, len(want))
		require.Len(t, got.sources, len(want))
		require.LessOrEqual(t, len(c.entries), set.Len()+maxStale(set.Len()), "sync %d", i)
	}
	require.Less(t, c.encoded.Load(), int64(300*3), "unchanged objects come from the cache")
}

// TestSyncPlanLeavesOutCreatedFields: the plan a Sync applies is the plan
// PlanSnapshot shows (the same changes, runs and consequences) but for the
// field lists of the objects it creates, which only PlanSnapshot's has.
func TestSyncPlanLeavesOutCreatedFields(t *testing.T) {
	ctx := context.Background()
	r := New(Config{Store: openStore(t, badger.Options{})})
	s := snap("r1", fleet(3))
	shown, errs, err := r.PlanSnapshot(ctx, s)
	require.NoError(t, err)
	require.Empty(t, errs)
	out := mustSync(t, r, s)
	require.Len(t, out.Plan.Changes, len(shown.Changes))
	require.Equal(t, shown.Consequences(), out.Plan.Consequences())
	require.Equal(t, shown.runs, out.Plan.runs)
	for i, c := range out.Plan.Changes {
		require.Equal(t, OpCreate, c.Op)
		require.Equal(t, shown.Changes[i].Key, c.Key)
		require.NotEmpty(t, shown.Changes[i].Fields, "%s", c.Key)
		require.Empty(t, c.Fields, "%s", c.Key)
	}
}
