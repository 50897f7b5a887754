package badger_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestDamagedDirectory damages a closed state directory in the ways disks,
// interrupted copies and hands do, and checks that Open reports it with an
// error naming the directory, without a panic (a panic or exit inside Badger
// would kill this test binary).
func TestDamagedDirectory(t *testing.T) {
	good := t.TempDir()
	populate(t, good)
	tables := glob(t, good, "*.sst")
	require.NotEmpty(t, tables, "the fixture must have table files")
	table := filepath.Base(tables[0])

	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		code   string
		want   string
	}{
		{"ManifestEmpty", func(t *testing.T, dir string) { truncate(t, dir, "MANIFEST", 0) }, state.EINTERNAL, "MANIFEST"},
		{"ManifestHeaderOnly", func(t *testing.T, dir string) { truncate(t, dir, "MANIFEST", 8) }, state.EINTERNAL, "lost its data"},
		{"ManifestTorn", func(t *testing.T, dir string) { truncate(t, dir, "MANIFEST", -3) }, state.EINTERNAL, "does not list table files " + table},
		{"ManifestGarbled", func(t *testing.T, dir string) { garble(t, dir, "MANIFEST", 8, 16) }, state.EINTERNAL, "MANIFEST"},
		{"ManifestMissing", func(t *testing.T, dir string) { remove(t, dir, "MANIFEST") }, state.EINTERNAL, "MANIFEST is missing"},
		{"TableMissing", func(t *testing.T, dir string) { remove(t, dir, table) }, state.EINTERNAL, table},
		{"TableTruncated", func(t *testing.T, dir string) { truncate(t, dir, table, size(t, dir, table)/2) }, state.EINTERNAL, table},
		{"TableEmpty", func(t *testing.T, dir string) { truncate(t, dir, table, 0) }, state.EINTERNAL, table},
		{"TableGarbledStart", func(t *testing.T, dir string) { garble(t, dir, table, 10, 1000) }, state.EINTERNAL, table},
		{"TableGarbledMiddle", func(t *testing.T, dir string) { garble(t, dir, table, size(t, dir, table)/2, 4096) }, state.EINTERNAL, table},
		{"TableGarbledEnd", func(t *testing.T, dir string) { garble(t, dir, table, size(t, dir, table)-300, 300) }, state.EINTERNAL, table},
		{"DataGone", func(t *testing.T, dir string) {
			for _, pattern := range []string{"MANIFEST", "*.sst", "*.vlog", "*.mem"} {
				for _, f := range glob(t, dir, pattern) {
					require.NoError(t, os.Remove(f))
				}
			}
		}, state.EINTERNAL, "lost its data"},
		{"NotOurs", func(t *testing.T, dir string) {
			require.NoError(t, os.RemoveAll(dir))
			db, err := badgerdb.Open(badgerdb.DefaultOptions(dir).WithLogger(nil))
			require.NoError(t, err)
			require.NoError(t, db.Update(func(txn *badgerdb.Txn) error { return txn.Set([]byte("k"), []byte("v")) }))
			require.NoError(t, db.Close())
		}, state.EINVALID, "not a tinkops state directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, good)
			tt.damage(t, dir)
			_, err := badger.Open(context.Background(), dir, badger.Options{})
			require.Error(t, err)
			t.Log(err)
			require.Equal(t, tt.code, state.ErrorCode(err), "%v", err)
			require.Contains(t, state.ErrorMessage(err), dir)
			require.Contains(t, state.ErrorMessage(err), tt.want)
			if tt.code == state.EINTERNAL {
				require.Contains(t, state.ErrorMessage(err), "Recovery", "the message points at the recovery procedure")
			}
		})
	}

	// What a crash leaves behind is not damage.
	t.Run("UnlistedTableIsKept", func(t *testing.T) {
		// A crash after a flush wrote a table but before the MANIFEST
		// listed it: the table is set aside, not deleted, and the store
		// opens.
		dir := copyDir(t, good)
		data, err := os.ReadFile(filepath.Join(dir, table))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "000099.sst"), data, 0o600))
		s := MustOpen(t, dir, badger.Options{})
		page, err := s.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Len(t, page.Objects, 500)
		require.FileExists(t, filepath.Join(dir, "orphaned", "000099.sst"))
	})
	for _, name := range []string{"000099.vlog", "00099.mem", "000098.sst"} {
		t.Run("EmptyFile/"+name, func(t *testing.T) {
			// A crash while Badger created or deleted a file.
			dir := copyDir(t, good)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
			s := MustOpen(t, dir, badger.Options{})
			_, err := s.GetObject(context.Background(), state.ObjectKey{Kind: state.KindHardware, Name: "node-000"})
			require.NoError(t, err)
			require.NoFileExists(t, filepath.Join(dir, name))
		})
	}

	t.Run("UndamagedCopyOpens", func(t *testing.T) {
		// The fixture itself passes the checks, and a failed open leaves
		// the directory unlocked.
		dir := copyDir(t, good)
		truncate(t, dir, table, 0)
		_, err := badger.Open(context.Background(), dir, badger.Options{})
		require.Error(t, err)
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.Rename(copyDir(t, good), dir))
		s := MustOpen(t, dir, badger.Options{})
		page, err := s.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Len(t, page.Objects, 500)
	})
}

// populate writes enough to dir that closing it leaves table files.
func populate(t *testing.T, dir string) {
	t.Helper()
	s, err := badger.Open(context.Background(), dir, badger.Options{NoSync: true, CompactInterval: -1, GCInterval: -1})
	require.NoError(t, err)
	for i := range 10 {
		b := &state.Batch{Actor: state.ActorGit}
		for j := range 50 {
			o := hw(fmt.Sprintf("node-%03d", i*50+j), map[string]string{"rack": fmt.Sprint(j % 7)})
			o.Annotations = map[string]string{"padding": strings.Repeat("x", 200)}
			b.Put(o, "")
		}
		_, err := s.Apply(context.Background(), b)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
}

func glob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	return m
}

func size(t *testing.T, dir, name string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, name))
	require.NoError(t, err)
	return fi.Size()
}

// truncate cuts name to n bytes, or removes -n bytes from its end.
func truncate(t *testing.T, dir, name string, n int64) {
	t.Helper()
	if n < 0 {
		n += size(t, dir, name)
	}
	require.NoError(t, os.Truncate(filepath.Join(dir, name), n))
}

// garble overwrites n bytes of name at off with a pattern that is neither
// zero nor plausible data.
func garble(t *testing.T, dir, name string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(0xA5 ^ i*31)
	}
	_, err = f.WriteAt(junk, off)
	require.NoError(t, err)
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	require.NoError(t, os.Remove(filepath.Join(dir, name)))
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.MkdirAll(dst, 0o700))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		in, err := os.Open(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		out, err := os.Create(filepath.Join(dst, e.Name()))
		require.NoError(t, err)
		_, err = io.Copy(out, in)
		require.NoError(t, err)
		in.Close()
		require.NoError(t, out.Close())
	}
	return dst
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}
