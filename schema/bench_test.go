package schema_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/schema/schematest"
)

// BenchmarkLoadFleet times schema.Load (validation and rendering included)
// on 10,000 hardware, 100 templates and 10,000 workflows: 20,100 objects.
func BenchmarkLoadFleet(b *testing.B) {
	dir := b.TempDir()
	require.NoError(b, schematest.Write(dir, schematest.Fleet(10_000, 100)))
	fsys := os.DirFS(dir)
	l := schema.NewLoader()
	// Warm the definitions and the file cache so the figure is Load itself.
	_, err := l.Load(context.Background(), os.DirFS(b.TempDir()))
	require.NoError(b, err)
	old := debug.SetGCPercent(gcPercent())
	defer debug.SetGCPercent(old)
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := schematest.SampleHeap(&peak)
		start := time.Now()
		set, err := l.Load(context.Background(), fsys)
		elapsed := time.Since(start)
		stop()
		require.NoError(b, err)
		require.Equal(b, 20_100, set.Len())
		b.ReportMetric(float64(set.Len())/elapsed.Seconds(), "objects/s")
		b.ReportMetric(elapsed.Seconds(), "s/load")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// gcPercent is the GC setting of the benchmark: tink validate and
// tink-server load with GOGC=400 (see cmd/), BENCH_GOGC overrides it.
func gcPercent() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_GOGC")); err == nil {
		return v
	}
	return 400
}

// BenchmarkLoadIncremental times the Load the reconciler runs on every
// commit: the 20,100-object fleet loaded once, then one hardware file
// changed and the repository loaded again from a file system that knows
// each file's hash (as a Git snapshot does). It reports ms/reload, the
// mean of the reloads.
func BenchmarkLoadIncremental(b *testing.B) {
	fsys := newHashedFS(schematest.Fleet(10_000, 100))
	l := schema.NewLoader()
	set, err := l.Load(context.Background(), fsys)
	require.NoError(b, err)
	require.Equal(b, 20_100, set.Len())
	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		n := i % 10_000
		fsys.put(fmt.Sprintf("hardware/node-%05d.yaml", n), schematest.Hardware(n, fmt.Sprintf("reload-%d", i)))
		cpu0 := processCPU()
		start := time.Now()
		set, err := l.Load(context.Background(), fsys)
		total += time.Since(start)
		cpu += processCPU() - cpu0
		require.NoError(b, err)
		require.Equal(b, 20_100, set.Len())
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/reload")
	// The CPU of the whole process (GC included) per reload: on a loaded
	// machine a truer figure of the work than the wall time.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/reload")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hashedFS is an in-memory repository that knows its files' hashes and
// lists its directories from an index, as a Git snapshot does.
type hashedFS struct {
	files  map[string]*fstest.MapFile
	hashes map[string]string
	dirs   map[string][]fs.DirEntry
	infos  map[string]fs.FileInfo // of the directories
}

func newHashedFS(files map[string]string) *hashedFS {
	h := &hashedFS{files: map[string]*fstest.MapFile{}, hashes: map[string]string{}}
	for name, content := range files {
		h.put(name, content)
	}
	h.dirs, h.infos = map[string][]fs.DirEntry{}, map[string]fs.FileInfo{}
	m := fstest.MapFS(h.files)
	_ = fs.WalkDir(m, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			entries, _ := m.ReadDir(p)
			for _, e := range entries {
				// Entries of their own, as a Git snapshot lists them.
				h.dirs[p] = append(h.dirs[p], benchEntry{name: e.Name(), dir: e.IsDir()})
			}
			h.infos[p], err = m.Stat(p)
		}
		return err
	})
	return h
}

// put writes a file (of a directory that exists already, once listed).
func (h *hashedFS) put(name, content string) {
	h.files[name] = &fstest.MapFile{Data: []byte(content), Mode: 0o644}
	sum := sha256.Sum256([]byte(content))
	h.hashes[name] = hex.EncodeToString(sum[:])
}

func (h *hashedFS) Open(name string) (fs.File, error) {
	if _, ok := h.files[name]; ok {
		return fstest.MapFS{name: h.files[name]}.Open(name)
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (h *hashedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if d, ok := h.dirs[name]; ok {
		return d, nil
	}
	return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
}

func (h *hashedFS) ReadFile(name string) ([]byte, error) {
	if f, ok := h.files[name]; ok {
		return bytes.Clone(f.Data), nil
	}
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
}

func (h *hashedFS) Stat(name string) (fs.FileInfo, error) {
	if info, ok := h.infos[name]; ok {
		return info, nil
	}
	if f, ok := h.files[name]; ok {
		return fstest.MapFS{name: f}.Stat(name)
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

// benchEntry is a directory entry.
type benchEntry struct {
	name string
	dir  bool
}

func (e benchEntry) Name() string { return e.name }
func (e benchEntry) IsDir() bool  { return e.dir }
func (e benchEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e benchEntry) Info() (fs.FileInfo, error) { return nil, fs.ErrInvalid }

// FileHash returns the content hash of name.
func (h *hashedFS) FileHash(name string) (string, bool) {
	v, ok := h.hashes[name]
	return v, ok
}
