package badger

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// Options configures a Store. The zero value is the production setting.
type Options struct {
	// NoSync acknowledges writes before they reach the disk. A crash of the
	// process loses nothing, but a crash of the machine can lose the last
	// acknowledged writes (never part of a batch). For tests and benchmarks.
	NoSync bool

	// Retention says which events are kept; the zero value keeps the
	// defaults of state.Retention.
	Retention state.Retention
	// CompactInterval is how often events outside Retention are removed.
	// Default 1 minute; negative disables the timer (CompactEvents still
	// works).
	CompactInterval time.Duration
	// GCInterval is how often Badger's value log is garbage-collected.
	// Default 5 minutes; negative disables it.
	GCInterval time.Duration

	// MaxTxnBytes caps the size of one Badger transaction. A batch larger
	// than this is committed in several transactions that readers still
	// see all at once (see the package documentation); an object larger
	// than half of it is refused (and any larger than 2.4 MB). Default:
	// half of what Badger accepts in one transaction (2.5 MB with the
	// store's 32 MiB memtables), records over 1 MB counting only as a
	// pointer, as they do in Badger.
	MaxTxnBytes int64
	// MaxGroup caps how many concurrent Apply calls are committed together
	// with one disk sync. Default 1000.
	MaxGroup int
	// WatchBuffer is how many recent events are kept in memory for watchers;
	// a watcher further behind reads from disk. Default 4096.
	WatchBuffer int

	// Now is the clock for object times, event times and retention. Default
	// time.Now.
	Now func() time.Time
	// Logger receives Badger's errors and warnings (its info and debug
	// messages at debug level). Default slog.Default().
	Logger *slog.Logger
	// Badger, if set, adjusts Badger's options before opening (cache sizes,
	// for example), starting from this package's (see badgerOptions).
	// Options this package relies on (SyncWrites, Dir, ValueDir, Logger,
	// DetectConflicts, ValueThreshold) are set again afterwards.
	Badger func(badgerdb.Options) badgerdb.Options
}

func (o Options) withDefaults() Options {
	o.Retention = o.Retention.WithDefaults()
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Minute
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = 1000
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Badger's defaults suit databases of hundreds of gigabytes; ours holds a
// fleet's objects, runs and events, about 15 MB of tables at 10,000
// machines. Its block cache holds decompressed table blocks in the Go heap,
// up to 256 MiB by default, which also raises the garbage collector's heap
// goal by as much; 64 MiB is four times the 10,000-machine fleet's
// compressed tables, and a miss costs a read of the page cache and a
// Snappy decompression of one 4 KiB block.
//
// The memtables are 32 MiB instead of Badger's 64. Badger allocates each
// one's arena whole (1.3 times its size: 83 MB at 64 MiB, live as long as
// the server) and maps its write-ahead file, whose written pages count in
// the process's RSS. Records are packed (pack.go), so 32 MiB holds what
// about 300 MiB of JSON did: a full sync of 20,100 objects (23 MB of
// records, its staged chunks going to the value log) fits in one, so no
// flush, whose table builder briefly holds several times the memtable
// (125 MB for a 16 MiB one), lands in the middle of it
// (BenchmarkFleetSync/full: peak heap 361-388 MiB at 32 MiB, 446-468 MiB
// at 16). Measured against 16 MiB, 1,000
// workers also ran faster (fewer flushes: 12,800-16,300 against
// 10,900-15,100 transitions/s), and the idle RSS was the same within the
// noise.
//
// Values of valueThreshold bytes and more go to Badger's value log and take
// only a pointer in a memtable, so the largest record (maxValue) does not
// depend on the memtables' size; Badger's own default threshold, set here
// because entrySize mirrors it.
const (
	blockCacheSize = 64 << 20
	memTableSize   = 32 << 20
	valueThreshold = 1 << 20
	// maxValue is the largest object or run record, encoded: 2.4 MB, what
	// Badger's 64 MiB memtables allowed before, and more than twice
	// the largest file or API request body (1 MiB).
	maxValue = 2_516_582
)

func (o Options) badgerOptions(dir string) badgerdb.Options {
	bo := badgerdb.DefaultOptions(dir).WithBlockCacheSize(blockCacheSize).WithMemTableSize(memTableSize)
	if o.Badger != nil {
		bo = o.Badger(bo)
	}
	return bo.
		WithDir(dir).
		WithValueDir(dir).
		WithSyncWrites(!o.NoSync).
		WithValueThreshold(valueThreshold).
		// One goroutine writes (see writer.go), and it checks resource
		// versions itself, so Badger's conflict tracking is pure cost.
		WithDetectConflicts(false).
		WithLogger(badgerLogger{o.Logger.With("component", "badger", "dir", dir)})
}

// badgerLogger routes Badger's log lines to slog, demoting its chatty info
// messages (table opening, compaction progress) to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, args ...any) { b.l.Error(line(f, args)) }
func (b badgerLogger) Warningf(f string, args ...any) {
	b.l.Warn(line(f, args))
}
func (b badgerLogger) Infof(f string, args ...any)  { b.l.Debug(line(f, args)) }
func (b badgerLogger) Debugf(f string, args ...any) { b.l.Debug(line(f, args)) }

func line(f string, args []any) string {
	return strings.TrimSpace(fmt.Sprintf(f, args...))
}
