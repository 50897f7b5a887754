package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// hashMapFS is a MapFS that knows its files' hashes, like a Git snapshot.
type hashMapFS struct{ fstest.MapFS }

func (h hashMapFS) FileHash(name string) (string, bool) {
	f, ok := h.MapFS[name]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(f.Data)
	return hex.EncodeToString(sum[:]), true
}

func TestIncrementalLoad(t *testing.T) {
	fsys := fstest.MapFS{}
	base := readDirFS(t, "testdata/base")
	for k, v := range base {
		fsys[k] = v
	}
	l := NewLoader()
	set1, err := l.Load(context.Background(), hashMapFS{fsys})
	require.NoError(t, err)
	require.Equal(t, int64(4), l.parses.Load())

	// Nothing changed: nothing is parsed, and the set is the same.
	set2, err := l.Load(context.Background(), hashMapFS{fsys})
	require.NoError(t, err)
	require.Equal(t, int64(4), l.parses.Load())
	require.Equal(t, set1.Counts(), set2.Counts())
	require.NotSame(t, set1.Hardware[0], set2.Hardware[0], "each Load gets its own objects")
	require.NotNil(t, set2.Workflows[0].Rendered, "set-wide checks still run")

	// One file changes: one file is parsed; a new mistake in it is found.
	changed := fstest.MapFS{}
	for k, v := range fsys {
		changed[k] = v
	}
	changed["hardware/node-02.yaml"] = &fstest.MapFile{Data: []byte(string(fsys["hardware/node-02.yaml"].Data) + "  userData: hello\n")}
	set3, err := l.Load(context.Background(), hashMapFS{changed})
	require.NoError(t, err)
	require.Equal(t, int64(5), l.parses.Load())
	require.Equal(t, "hello", *set3.Hardware[1].Spec.UserData)
	require.Nil(t, set1.Hardware[1].Spec.UserData, "earlier sets are untouched")

	changed["hardware/node-01.yaml"] = &fstest.MapFile{Data: []byte("kind: Nope\n")}
	_, err = l.Load(context.Background(), hashMapFS{changed})
	require.Error(t, err)
	require.Equal(t, int64(6), l.parses.Load())
	// A cached error is reported again without parsing.
	_, err = l.Load(context.Background(), hashMapFS{changed})
	require.ErrorContains(t, err, `unknown kind "Nope"`)
	require.Equal(t, int64(6), l.parses.Load())
}

func readDirFS(t *testing.T, dir string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	for _, name := range []string{"hardware/node-01.yaml", "hardware/node-02.yaml", "templates/provision.yaml", "workflows/provision-node-01.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		out[name] = &fstest.MapFile{Data: b}
	}
	return out
}
