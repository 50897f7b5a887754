package schema

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema/schematest"
)

// reportingFS is a HashFS that reports its changes since the state it was
// made from, as a gitsource snapshot does, and counts the hashes asked.
type reportingFS struct {
	hashMapFS
	token, base *int
	changed     []string
	asked       *atomic.Int64
}

func (r reportingFS) FileHash(name string) (string, bool) {
	r.asked.Add(1)
	return r.hashMapFS.FileHash(name)
}

func (r reportingFS) FSToken() any { return r.token }

func (r reportingFS) ChangedSince(token any) ([]string, bool) {
	if t, _ := token.(*int); t == nil || t != r.base {
		return nil, false
	}
	return r.changed, true
}

// next is the state after files: made from r, with its changes when the
// paths are r's.
func (r reportingFS) next(files fstest.MapFS) reportingFS {
	n := reportingFS{hashMapFS: hashMapFS{maps.Clone(files)}, token: new(int), asked: r.asked}
	if len(files) != len(r.MapFS) {
		return n
	}
	var changed []string
	for name, f := range files {
		old, ok := r.MapFS[name]
		if !ok {
			return n
		}
		if string(old.Data) != string(f.Data) {
			changed = append(changed, name)
		}
	}
	n.base, n.changed = r.token, changed
	return n
}

// TestIncrementalLoadFromReportedChanges: a Loader given file systems
// that report their changes finds the changed files without asking every
// file's hash, and loads what a fresh Loader loads, over random commits:
// content changes (the incremental way), files added and removed, errors
// and their fixes, tink.cue changes, and states not made from the one
// loaded last (a Load skipped).
func TestIncrementalLoadFromReportedChanges(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 3))
	const n = 30
	files := fstest.MapFS{}
	for name, content := range schematest.Fleet(n, 3) {
		files[name] = &fstest.MapFile{Data: []byte(content)}
	}
	cur := reportingFS{hashMapFS: hashMapFS{files}, token: new(int), asked: new(atomic.Int64)}
	l := NewLoader()
	reported, incremental := 0, 0
	fix := ""
	for step := range 120 {
		files = maps.Clone(cur.MapFS)
		if fix != "" {
			files[fix] = &fstest.MapFile{Data: []byte(strings.TrimSuffix(string(files[fix].Data), "  ::\n"))}
			fix = ""
		}
		put := func(name, content string) { files[name] = &fstest.MapFile{Data: []byte(content)} }
		i := rng.IntN(n)
		hw := fmt.Sprintf("hardware/node-%05d.yaml", i)
		switch rng.IntN(10) {
		case 0:
			put("hardware/extra.yaml", strings.ReplaceAll(strings.ReplaceAll(schematest.Hardware(n+1, ""), schematest.MAC(n+1), "52:54:00:00:aa:01"), fmt.Sprintf("node-%05d", n+1), "extra"))
		case 1:
			delete(files, "hardware/extra.yaml")
		case 2:
			put(hw, schematest.Hardware(i, "")+"  ::\n") // broken, fixed at the next step
			fix = hw
		case 3:
			put("tink.cue", fmt.Sprintf("defaults: {labels: {site: %q}}\n", fmt.Sprint(rng.IntN(2))))
		case 4:
			put("README.md", fmt.Sprint(step)) // not an object file
		default:
			for range 1 + rng.IntN(3) {
				j := rng.IntN(n)
				put(fmt.Sprintf("hardware/node-%05d.yaml", j), schematest.Hardware(j, fmt.Sprint("step ", step)))
			}
		}
		next := cur.next(files)
		if rng.IntN(8) == 0 {
			next = next.next(files) // a state between was never loaded
		}
		cur = next
		before, asked := l.incremental.Load(), cur.asked.Load()
		got, gotErr := l.Load(ctx, cur)
		want, wantErr := NewLoader().Load(ctx, hashMapFS{cur.MapFS})
		if wantErr != nil {
			require.Error(t, gotErr, "step %d", step)
			require.Equal(t, wantErr.Error(), gotErr.Error(), "step %d", step)
			continue
		}
		require.NoError(t, gotErr, "step %d", step)
		require.Equal(t, dumpSet(t, want), dumpSet(t, got), "step %d", step)
		if l.incremental.Load() > before {
			incremental++
			if cur.asked.Load()-asked < int64(len(cur.MapFS)) {
				reported++
			}
		}
	}
	t.Logf("%d incremental loads, %d of them found their changes as reported", incremental, reported)
	require.Greater(t, reported, 30)
}
