// Package gitsource yields Snapshots of the repository tinkops reconciles:
// either a remote Git repository (Git) or a local directory watched for
// changes (Dir). Both implement Source.
//
// # Using a Source
//
// A consumer calls Snapshot once at start (it syncs if no snapshot exists
// yet), runs Run in a goroutine of its own, and waits on Changes: a value
// arrives whenever a snapshot with a new revision is available; it then
// calls Snapshot again and skips the work if the revision is one it has
// already applied. Trigger asks for a sync now (a webhook calls it).
// Status reports the last revision, the last error and the counters an
// operator needs; it never blocks on the network.
//
// # Snapshots
//
// A Snapshot holds the revision, the commit's author, message and time, and
// every file under the configured path with its Git blob hash. Both sources
// use the Git blob hash (sha1 of "blob <size>\x00<content>"), so a file has
// the same hash whether it comes from a commit or from a directory, and a
// file whose hash did not change need not be parsed again.
//
// A Snapshot is immutable. Its contents are read into memory when it is
// made (a blob whose hash the previous snapshot also had shares that
// snapshot's bytes; Git reads only the trees whose hash changed since the
// last snapshot, and of those only the changed entries), so a later fetch, a cache reset or an edit in a watched
// directory never changes what a reader of an older Snapshot sees. Files
// larger than MaxFileSize (1 MiB by default, schema.MaxFileSize) are listed
// with their real size but their content is not kept: Stat reports the
// size, so schema.Load reports them as too large, and reading them fails.
// The contents kept in one snapshot are bounded by MaxTotalSize.
//
// Names starting with "." (files and directories: .git, .github, editor swap
// files) are left out, as schema.Load skips them anyway; symbolic links and
// submodules in a commit are left out; in a directory, a symbolic link to a
// regular file is followed and a link to a directory is not.
//
// Revisions are "<branch>@sha1:<hash>" for a branch, "<tag>@sha1:<hash>" for
// a tag (the hash of the commit the tag points to), "sha1:<hash>" for a
// pinned commit and "dir@sha256:<hash>" for a directory, where the hash is
// over the sorted (path, blob hash) pairs, so it changes exactly when a
// file's content, name or presence does.
//
// # Git
//
// Git follows one branch, tag or commit of a repository reached over
// https://, http://, ssh://, scp-like user@host:path, git:// or file://. Each
// sync first lists the remote's refs (ls-remote) and does nothing more when
// the ref still points where the last snapshot came from; after a push a
// webhook reports (TriggerPush) it fetches the branch at once instead, and
// syncs wherever the branch points after that fetch. Otherwise it
// fetches that one ref, depth 1, no tags, with force, into a bare
// repository in a subdirectory of CacheDir that is kept between syncs and
// restarts. A commit already in the cache (a branch moved back, a restart)
// is not fetched again. When a fetch or the objects it left behind fail, the
// cache is deleted and the commit fetched once more into a fresh one; a
// cache that has gathered more than a few dozen pack files is started afresh
// too, since go-git does not repack. A pinned commit is fetched by hash when
// the server advertises that it may be (uploadpack.allowReachableSHA1InWant
// or allowTipSHA1InWant), otherwise by fetching every branch in full; once it
// is in the cache no more network calls are made.
//
// Every network call runs under Timeout (60 s by default). go-git does not
// pass a context to the connection it opens for git:// and ssh://, so for
// git:// a connection is dialled under the deadline first, and for ssh the
// dial timeout is set in the client configuration.
//
// Run syncs every PollInterval (1 minute by default) with ±10% jitter so
// that many servers do not poll in step; after a failure it retries after
// RetryMin (1 s), doubling per consecutive failure, with jitter, up to the
// poll interval. Status shows the last error and the count of consecutive
// failures.
//
// Credentials come from AuthDir, read again at each sync so a rotated
// Kubernetes secret mount takes effect without a restart (see ReadAuthDir).
// For ssh the host key is checked against known_hosts and the client offers
// only the host key algorithms known_hosts has for that host, which avoids
// go-git's "knownhosts: key mismatch" when a server has several host keys.
// Userinfo in an https URL is used as basic auth and removed from the URL.
// Credentials never appear in errors, logs or Status: URLs are shown
// without userinfo and any secret text is replaced.
//
// # Dir
//
// Dir watches a local directory with fsnotify: every subdirectory is
// watched, including ones created later. Events are debounced (150 ms of
// quiet, at most 1 s after the first event) and then the whole tree is read
// again, which is cheap at the size of a configuration repository and never
// misses an edit. A full rescan also runs every PollInterval, in case an
// event was lost (an inotify queue overflow also forces one).
//
// # Lifecycle
//
// Constructors do no I/O. Run starts the work and owns every goroutine it
// starts; it returns nil when its context is cancelled, after they have all
// stopped. Only one Run may be active on a Source at a time. One cache
// directory must not be shared by two running processes.
package gitsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"
)

// Source yields Snapshots of a repository.
type Source interface {
	// Snapshot returns the latest snapshot. If there is none yet, it syncs
	// first and returns that sync's error if it fails.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// Changes receives a value whenever a snapshot with a new revision is
	// available, the first snapshot included. Values do not queue up: one
	// receive stands for any number of new revisions since the last one.
	// It is meant for one receiver, which then calls Snapshot; a
	// notification for a revision it has already seen is harmless.
	Changes() <-chan struct{}
	// Trigger asks Run to sync now; it never blocks. Triggers that arrive
	// during a sync cause one more sync after it.
	Trigger()
	// Status reports the state of the source without blocking on a sync.
	Status() Status
	// Run keeps the snapshot current until ctx is cancelled.
	Run(ctx context.Context) error
}

// Defaults for the zero values of Config.
const (
	DefaultBranch       = "main"
	DefaultPollInterval = time.Minute
	DefaultTimeout      = 60 * time.Second
	DefaultRetryMin     = time.Second
	DefaultDebounce     = 150 * time.Millisecond
	// DefaultMaxFileSize matches schema.MaxFileSize: larger files are listed
	// but their content is not kept.
	DefaultMaxFileSize = 1 << 20
	// DefaultMaxTotalSize bounds the file contents one snapshot keeps.
	DefaultMaxTotalSize = 512 << 20
)

// maxDebounceDelay is the longest a stream of events may postpone a scan
// of a watched directory.
const maxDebounceDelay = time.Second

// Config says what to follow. Repo decides the kind of source; the fields
// that do not apply to it are ignored.
type Config struct {
	// Repo is a Git URL (https://, http://, ssh://, user@host:path, git://,
	// file://) or the path of a local directory to watch.
	Repo string
	// Branch to follow; DefaultBranch when Branch, Tag and Commit are all
	// empty.
	Branch string
	// Tag pins a tag (followed if it moves).
	Tag string
	// Commit pins a full commit hash.
	Commit string
	// Path is the subdirectory of the repository to read; "" is the root.
	Path string
	// PollInterval is the time between syncs; DefaultPollInterval if zero.
	PollInterval time.Duration
	// Timeout bounds each network call; DefaultTimeout if zero.
	Timeout time.Duration
	// RetryMin is the first delay after a failed sync; DefaultRetryMin if
	// zero. Delays double up to PollInterval.
	RetryMin time.Duration
	// AuthDir holds the credentials files (see ReadAuthDir); "" for none.
	AuthDir string
	// CacheDir is where Git keeps its repository cache (required for Git).
	CacheDir string
	// Debounce is the quiet time Dir waits after an event; DefaultDebounce
	// if zero.
	Debounce time.Duration
	// MaxFileSize is the largest file whose content a snapshot keeps;
	// DefaultMaxFileSize if zero.
	MaxFileSize int64
	// MaxTotalSize bounds the contents of one snapshot; a repository
	// beyond it fails to sync. DefaultMaxTotalSize if zero.
	MaxTotalSize int64
	// Logger receives sync events; nil discards them.
	Logger *slog.Logger
	// OnSync, if set, is called after every sync with how long it took and
	// its error (nil: it worked): for Git one check of the remote and the
	// fetch it may need, for Dir one read of the directory. A sync cut
	// short because Run's context ended is not reported. Metrics hang
	// here; it runs on the syncing goroutine, so it must return at once.
	OnSync func(took time.Duration, err error)
}

// withDefaults returns c with its zero values filled in.
func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	c.RetryMin = min(c.RetryMin, c.PollInterval)
	if c.Debounce <= 0 {
		c.Debounce = DefaultDebounce
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxTotalSize <= 0 {
		c.MaxTotalSize = DefaultMaxTotalSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// New returns a Git source when cfg.Repo is a Git URL and a Dir source
// when it is a local path. Like the constructors it calls, it does no I/O.
func New(cfg Config) (Source, error) {
	if cfg.Repo == "" {
		return nil, errors.New("no repository given")
	}
	if IsRemote(cfg.Repo) {
		return NewGit(cfg)
	}
	if cfg.Tag != "" || cfg.Commit != "" {
		return nil, fmt.Errorf("repository %s is a local directory: a tag or commit applies only to a Git URL (use file://%s to read it as a Git repository)", cfg.Repo, cfg.Repo)
	}
	return NewDir(cfg)
}

// IsRemote reports whether repo is a Git URL rather than a local path. As
// git does, it takes "host:path" with no slash before the colon as ssh.
func IsRemote(repo string) bool {
	if strings.Contains(repo, "://") {
		return true
	}
	colon := strings.IndexByte(repo, ':')
	if colon <= 0 {
		return false
	}
	slash := strings.IndexByte(repo, '/')
	return slash < 0 || slash > colon
}

// cleanPath normalises the configured subdirectory to a slash path relative
// to the repository root, "." for the root.
func cleanPath(p string) (string, error) {
	p = strings.Trim(strings.ReplaceAll(p, "\\", "/"), "/")
	if p == "" {
		return ".", nil
	}
	p = path.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return p, nil
}

// hidden reports whether a file or directory name is left out of
// snapshots.
func hidden(name string) bool {
	return strings.HasPrefix(name, ".")
}
