package gitsource

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Dir is a Source that watches a local directory.
type Dir struct {
	cfg  Config
	root string
	log  *slog.Logger
	t    *tracker
}

var _ Source = (*Dir)(nil)

// NewDir returns a Source for the directory cfg.Repo (its subdirectory
// cfg.Path). It does no I/O: a missing directory is an error of the first
// sync.
func NewDir(cfg Config) (*Dir, error) {
	cfg = cfg.withDefaults()
	if cfg.Repo == "" {
		return nil, errors.New("no directory given")
	}
	p, err := cleanPath(cfg.Path)
	if err != nil {
		return nil, err
	}
	d := &Dir{cfg: cfg, root: filepath.Join(cfg.Repo, filepath.FromSlash(p))}
	d.log = cfg.Logger.With("dir", d.root)
	d.t = newTracker(Status{Source: cfg.Repo, Ref: "directory", Path: p})
	return d, nil
}

// Snapshot returns the latest snapshot, reading the directory first if
// there is none.
func (d *Dir) Snapshot(ctx context.Context) (*Snapshot, error) {
	return d.t.syncOnce(ctx, func(context.Context) error { return d.sync(nil) })
}

// Changes receives a value when a snapshot with a new revision is ready.
func (d *Dir) Changes() <-chan struct{} { return d.t.changes }

// Trigger makes Run read the directory now.
func (d *Dir) Trigger() { d.t.doTrigger() }

// Status reports the state of the source.
func (d *Dir) Status() Status { return d.t.getStatus() }

// Run watches the directory and keeps the snapshot current until ctx is
// cancelled. It fails only when no watcher can be created.
func (d *Dir) Run(ctx context.Context) error {
	if err := d.t.startRun(); err != nil {
		return err
	}
	defer d.t.stopRun()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.root, err)
	}
	defer w.Close()
	ws := &watchSet{w: w, log: d.log, warned: map[string]bool{}}

	poll := time.NewTimer(0) // read at once
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var pending time.Time // the first event not yet read
	wake := func() {
		now := time.Now()
		if pending.IsZero() {
			pending = now
		}
		// A stream of events postpones the read by at most
		// maxDebounceDelay.
		wait := min(d.cfg.Debounce, pending.Add(maxDebounceDelay).Sub(now))
		debounce.Reset(max(wait, 0))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if d.relevant(ev) {
				wake()
			}
			continue
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// On overflow events were lost: read everything again.
			d.log.Warn("watch error; reading the directory again", "err", err.Error())
			wake()
			continue
		case <-debounce.C:
		case <-poll.C:
		case <-d.t.trigger:
		}
		pending = time.Time{}
		debounce.Stop()
		if d.t.lockSync(ctx) != nil {
			return nil
		}
		select {
		case <-d.t.trigger:
		default:
		}
		_ = d.sync(ws)
		d.t.unlockSync()
		poll.Reset(d.t.nextDelay(d.cfg))
	}
}

// relevant reports whether an event may change the snapshot.
func (d *Dir) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	// Watches are set on the real paths (read resolves the root's links).
	root := d.root
	if r, err := filepath.EvalSymlinks(d.root); err == nil {
		root = r
	}
	rel, err := filepath.Rel(root, ev.Name)
	if err != nil {
		return true
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if part != "." && hidden(part) {
			return false
		}
	}
	return true
}

// sync reads the directory, watching every subdirectory when ws is set,
// and publishes the snapshot. The caller holds t.syncing.
func (d *Dir) sync(ws *watchSet) error {
	d.t.update(func(st *Status) { st.Checks++ })
	start := time.Now()
	snap, err := d.read(ws)
	now := time.Now()
	d.t.finish(err, now)
	if d.cfg.OnSync != nil {
		d.cfg.OnSync(now.Sub(start), err)
	}
	if err != nil {
		d.log.Warn("read failed", "err", err.Error())
		return err
	}
	if d.t.publish(snap, now) {
		d.log.Info("new revision", "revision", snap.Revision, "files", len(snap.Files))
	}
	return nil
}

// read makes a snapshot of the directory.
func (d *Dir) read(ws *watchSet) (*Snapshot, error) {
	st, err := os.Stat(d.root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("read %s: not a directory", d.root)
	}
	// Links are resolved against the real root: a root that is itself a
	// link (a Kubernetes volume mount often is) is no escape.
	realRoot, err := filepath.EvalSymlinks(d.root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.root, err)
	}
	prev := d.t.snapshot().byHash()
	var files []*fileData
	var total int64
	err = filepath.WalkDir(realRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != realRoot && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked; an event follows
			}
			return err
		}
		if p != realRoot && hidden(e.Name()) {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			if ws != nil {
				// Watch before reading the entries, so nothing created
				// in between is missed.
				ws.add(p)
			}
			return nil
		}
		open := p
		if e.Type()&fs.ModeSymlink != 0 {
			// Follow links to files inside the repository only: a link to
			// the secrets folder or /etc/passwd would show what it points
			// at to anyone who can read the status. Links to directories
			// are not followed (they could loop).
			target, ok := insideRoot(realRoot, p)
			if !ok {
				if ws != nil && !ws.warned[p] {
					ws.warned[p] = true
					d.log.Warn("symbolic link leads out of the repository; left out", "path", p)
				}
				return nil
			}
			if st, err := os.Stat(target); err != nil || !st.Mode().IsRegular() {
				return nil
			}
			open = target // what was checked is what is read
		} else if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(realRoot, p)
		if err != nil {
			return err
		}
		fd, err := d.readFile(open, filepath.ToSlash(rel), prev)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += int64(len(fd.data))
		if total > d.cfg.MaxTotalSize {
			return fmt.Errorf("the files hold more than %d bytes", d.cfg.MaxTotalSize)
		}
		files = append(files, fd)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.root, err)
	}
	snap := newSnapshot(&Snapshot{Time: time.Now()}, files)
	snap.Revision = contentRevision(snap.Files)
	return snap, nil
}

// insideRoot resolves the link p and reports whether its target lies in
// realRoot (the root with its own links resolved).
func insideRoot(realRoot, p string) (string, bool) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(realRoot, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return target, true
}

// readFile reads one file, keeping its content if it is within the limit.
func (d *Dir) readFile(p, rel string, prev map[string][]byte) (*fileData, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fd := &fileData{File: File{Path: rel, Size: st.Size()}, maxSize: d.cfg.MaxFileSize}
	if st.Size() > d.cfg.MaxFileSize {
		fd.tooBig = true
		return d.hashLarge(fd, f)
	}
	b, err := readAllInto(io.LimitReader(f, d.cfg.MaxFileSize+1), make([]byte, 0, st.Size()+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if int64(len(b)) > d.cfg.MaxFileSize {
		// It grew while we read it.
		fd.tooBig = true
		return d.hashLarge(fd, f)
	}
	fd.Size = int64(len(b))
	fd.Hash = blobHash(b)
	if old, ok := prev[fd.Hash]; ok {
		b = old // share the previous snapshot's bytes
	}
	fd.data = b
	return fd, nil
}

// hashLarge hashes a file too large to keep without holding it in memory,
// so its hash is its Git blob hash like every other file's.
func (d *Dir) hashLarge(fd *fileData, f *os.File) (*fileData, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", fd.Path, err)
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", st.Size())
	// A file that changes meanwhile gets a wrong hash until the event
	// that follows the change causes another read.
	if _, err := io.CopyN(h, f, st.Size()); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", fd.Path, err)
	}
	fd.Size = st.Size()
	fd.Hash = hex.EncodeToString(h.Sum(nil))
	return fd, nil
}

// watchSet watches every directory of the tree. Each read adds a watch for
// every directory it walks: adding an existing watch changes nothing, and
// fsnotify drops the watches of directories that are deleted or moved away,
// so a directory deleted and created again, or renamed, is watched again
// at the read its events cause.
type watchSet struct {
	w      *fsnotify.Watcher
	log    *slog.Logger
	warned map[string]bool
}

func (s *watchSet) add(dir string) {
	if err := s.w.Add(dir); err != nil && !s.warned[dir] {
		// The periodic read still sees changes here; the next read
		// tries again.
		s.warned[dir] = true
		s.log.Warn("cannot watch directory", "path", dir, "err", err.Error())
	}
}
