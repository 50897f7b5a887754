package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// runCmd runs tink-server with args in-process and returns its output.
func runCmd(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, stdin, &out, &errOut)
	return out.String(), errOut.String(), err
}

// storeContents is what the state store shows, for comparing a restored
// directory with the original.
type storeContents struct {
	Objects []*state.Object
	Runs    []*state.WorkflowRun
	Events  []state.Event
	Sync    *state.SyncStatus
}

func readStore(t *testing.T, dir string) storeContents {
	t.Helper()
	ctx := context.Background()
	s, err := badger.Open(ctx, dir, badger.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	var c storeContents
	objs, err := s.ListObjects(ctx, state.ObjectQuery{})
	require.NoError(t, err)
	c.Objects = objs.Objects
	runs, err := s.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	c.Runs = runs.Runs
	c.Events, err = s.Events(ctx, state.EventQuery{Limit: 100000})
	require.NoError(t, err)
	c.Sync, err = s.SyncStatus(ctx)
	require.NoError(t, err)
	return c
}

// serveOnce runs the server on dataDir with the example repository until
// its first sync finished, then stops it.
func serveOnce(t *testing.T, dataDir string) {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--repo", filepath.Join("..", "..", "examples", "repo")}))
	require.NoError(t, m.Open(context.Background()))
	waitReady(t, m)
	require.NoError(t, m.Close())
}

// TestBackupRestoreThroughFiles: what an operator does. The server syncs
// the example repository and stops; backup writes a file, restore makes a
// new state directory from it, and the directory holds what the server
// left, and a server starts on it.
func TestBackupRestoreThroughFiles(t *testing.T) {
	dataDir := t.TempDir()
	serveOnce(t, dataDir)
	want := readStore(t, dataDir)
	require.Len(t, want.Objects, 7)
	require.NotEmpty(t, want.Events)

	backupDir := t.TempDir()
	file := filepath.Join(backupDir, "tink.backup")
	require.NoError(t, os.WriteFile(file, []byte("an older backup"), 0o600))
	stdout, _, err := runCmd(t, nil, "backup", "--data-dir", dataDir, "--out", file)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(stdout, "\n"), "one summary line: %q", stdout)
	require.Contains(t, stdout, "7 objects")
	require.Contains(t, stdout, file)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Contains(t, stdout, " "+strconv.FormatInt(fi.Size(), 10)+" bytes", "the summary gives the file's size")
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(backupDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the old backup was replaced and no temporary file is left")

	restored := filepath.Join(t.TempDir(), "restored")
	stdout, _, err = runCmd(t, nil, "restore", "--data-dir", restored, "--in", file)
	require.NoError(t, err)
	require.Contains(t, stdout, "restored "+file+" into "+restored)
	require.Contains(t, stdout, "7 objects")
	require.Equal(t, want, readStore(t, restored))

	// A server runs on the restored directory and goes on from there.
	serveOnce(t, restored)
	after := readStore(t, restored)
	require.Greater(t, len(after.Events), len(want.Events))
	require.Equal(t, want.Events, after.Events[:len(want.Events)], "the restored history stays as it was")
	require.Equal(t, want.Events[len(want.Events)-1].Seq+1, after.Events[len(want.Events)].Seq)
}

// TestBackupRestoreThroughPipes: --out - and --in - stream the backup, and
// the summary then goes to standard error.
func TestBackupRestoreThroughPipes(t *testing.T) {
	dataDir := t.TempDir()
	serveOnce(t, dataDir)
	want := readStore(t, dataDir)

	stdout, stderr, err := runCmd(t, nil, "backup", "--data-dir", dataDir, "--out", "-")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(stdout, "tinkops-backup\n"), "the backup is on standard output")
	require.Contains(t, stderr, "backed up "+dataDir)

	restored := t.TempDir() // empty directories are fine
	out, _, err := runCmd(t, strings.NewReader(stdout), "restore", "--data-dir", restored, "--in", "-")
	require.NoError(t, err)
	require.Contains(t, out, "restored standard input into "+restored)
	require.Equal(t, want, readStore(t, restored))
}

// TestBackupLockedDataDir: a running server holds its directory; the error
// names the directory and says what to do, and no file is written.
func TestBackupLockedDataDir(t *testing.T) {
	dataDir := t.TempDir()
	m := NewMain(io.Discard, io.Discard)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--repo", filepath.Join("..", "..", "examples", "repo")}))
	require.NoError(t, m.Open(context.Background()))
	defer m.Close()

	outDir := t.TempDir()
	_, _, err := runCmd(t, nil, "backup", "--data-dir", dataDir, "--out", filepath.Join(outDir, "tink.backup"))
	require.Error(t, err)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	require.Contains(t, err.Error(), dataDir)
	require.Contains(t, err.Error(), "in use by another process")
	require.Contains(t, err.Error(), "stop tink-server")
	entries, err := os.ReadDir(outDir)
	require.NoError(t, err)
	require.Empty(t, entries, "neither the backup nor a temporary file is left")
}

// TestBackupMissingDataDir: a mistyped --data-dir is an error, not an empty
// backup of a store created on the spot.
func TestBackupMissingDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "tink-dta")
	_, _, err := runCmd(t, nil, "backup", "--data-dir", dataDir, "--out", filepath.Join(t.TempDir(), "b"))
	require.Error(t, err)
	require.Contains(t, err.Error(), dataDir)
	require.Contains(t, err.Error(), "does not exist")
	_, statErr := os.Stat(dataDir)
	require.True(t, os.IsNotExist(statErr))
}

// TestRestoreRefusesNonEmptyDataDir: restore never writes over a state
// directory (or anything else); the error names the directory.
func TestRestoreRefusesNonEmptyDataDir(t *testing.T) {
	src := t.TempDir()
	serveOnce(t, src)
	file := filepath.Join(t.TempDir(), "tink.backup")
	_, _, err := runCmd(t, nil, "backup", "--data-dir", src, "--out", file)
	require.NoError(t, err)

	target := t.TempDir()
	serveOnce(t, target) // a state directory of its own
	before := readStore(t, target)
	_, _, err = runCmd(t, nil, "restore", "--data-dir", target, "--in", file)
	require.Error(t, err)
	require.Equal(t, state.ECONFLICT, state.ErrorCode(err))
	require.Contains(t, err.Error(), target)
	require.Contains(t, err.Error(), "not empty")
	require.Equal(t, before, readStore(t, target), "the directory is untouched")
}

// TestRestoreRefusesOtherFiles: a file that is not a backup is refused, and
// the error names it.
func TestRestoreRefusesOtherFiles(t *testing.T) {
	file := filepath.Join("..", "..", "examples", "repo", "hardware", "node-01.yaml")
	target := filepath.Join(t.TempDir(), "restored")
	_, _, err := runCmd(t, nil, "restore", "--data-dir", target, "--in", file)
	require.Error(t, err)
	require.Equal(t, state.EINVALID, state.ErrorCode(err))
	require.Contains(t, err.Error(), file)
	require.Contains(t, err.Error(), "not a tinkops backup")
	_, statErr := os.Stat(target)
	require.True(t, os.IsNotExist(statErr), "nothing was created")

	_, _, err = runCmd(t, nil, "restore", "--data-dir", target, "--in", filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "missing")
}

// TestSubcommandFlags: required flags are asked for, and help mentions the
// subcommands.
func TestSubcommandFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ErrBackupOutRequired", []string{"backup", "--data-dir", t.TempDir()}, "--out is required"},
		{"ErrRestoreInRequired", []string{"restore", "--data-dir", t.TempDir()}, "--in is required"},
		{"ErrBackupArgument", []string{"backup", "--out", "x", "extra"}, `unexpected argument "extra"`},
		{"ErrBackupUnknownFlag", []string{"backup", "--repo", "x"}, "flag provided but not defined: -repo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, nil, tc.args...)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("OKServerHelp", func(t *testing.T) {
		_, stderr, err := runCmd(t, nil, "--help")
		require.NoError(t, err)
		require.Contains(t, stderr, "tink-server backup --data-dir DIR --out FILE")
		require.Contains(t, stderr, "tink-server restore --data-dir DIR --in FILE")
	})
	t.Run("OKBackupHelp", func(t *testing.T) {
		_, stderr, err := runCmd(t, nil, "backup", "-h")
		require.NoError(t, err)
		require.Contains(t, stderr, "-out")
		require.Contains(t, stderr, "stop")
	})
}

// TestBackupFromRunningServer: `tink-server backup --server URL` backs up a
// running server through GET /v1/backup while it goes on serving; the file
// restores to what the server holds. A stream cut short fails the backup
// and leaves the previous file in place.
func TestBackupFromRunningServer(t *testing.T) {
	ctx := context.Background()
	m := MustRunMain(t, copyDir(t, filepath.Join("..", "..", "examples", "repo")))
	waitReady(t, m)
	file := filepath.Join(t.TempDir(), "tink.backup")
	out, _, err := runCmd(t, nil, "backup", "--server", "http://"+m.Addr(), "--out", file)
	require.NoError(t, err)
	require.Regexp(t, `^backed up http://127\.0\.0\.1:\d+: 7 objects, `, out)

	restored := filepath.Join(t.TempDir(), "restored")
	_, _, err = runCmd(t, nil, "restore", "--data-dir", restored, "--in", file)
	require.NoError(t, err)
	live, err := m.Store.ListObjects(ctx, state.ObjectQuery{})
	require.NoError(t, err)
	got := readStore(t, restored)
	require.Len(t, got.Objects, len(live.Objects))
	for i, o := range live.Objects {
		require.Equal(t, o.Key(), got.Objects[i].Key())
		require.Equal(t, o.ResourceVersion, got.Objects[i].ResourceVersion)
	}
	_, err = m.Store.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "node-01"})
	require.NoError(t, err, "the server goes on")

	// A server whose stream stops half way: the backup fails and the file
	// from before stays as it was.
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(good[:len(good)/2])
	}))
	defer cut.Close()
	_, _, err = runCmd(t, nil, "backup", "--server", cut.URL, "--out", file)
	require.ErrorContains(t, err, "the backup received is not complete")
	require.ErrorContains(t, err, "truncated")
	after, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, good, after, "the previous backup is untouched")
	entries, err := os.ReadDir(filepath.Dir(file))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left")

	// A URL that is not a tink-server API says so (roles are checked by
	// the API's own tests: GET /v1/backup is admin).
	_, _, err = runCmd(t, nil, "backup", "--server", "http://"+m.Addr()+"/nope", "--out", file)
	require.ErrorContains(t, err, "no such API path")
}
