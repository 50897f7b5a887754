package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// peelToCommit follows annotated tags to the commit they name.
func peelToCommit(s storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		o, err := object.GetObject(s, h)
		if err != nil {
			return nil, err
		}
		switch o := o.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("%s is a %s, not a commit", h, o.Type())
		}
	}
	return nil, fmt.Errorf("%s: too many nested tags", h)
}

// build reads the files of commit under the configured path. It starts
// from what the previous build read (g.last): a directory whose tree hash
// did not change is taken whole, and of a directory that changed only the
// entries whose hash did are read. A one-file commit to a fleet of 20,000
// files then decodes no tree but the changed directories' and reads one
// blob.
func (g *Git) build(s storer.EncodedObjectStorer, c *object.Commit) (*Snapshot, error) {
	root := c.TreeHash
	if g.path != "." {
		tree, err := c.Tree()
		if err != nil {
			return nil, err
		}
		e, err := tree.FindEntry(g.path)
		if errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) || (err == nil && e.Mode != filemode.Dir) {
			return nil, fmt.Errorf("%w: %q is not a directory in this commit", errPathNotFound, g.path)
		}
		if err != nil {
			return nil, err
		}
		root = e.Hash
	}
	if g.packs != nil {
		g.packs.refresh()
	}
	b := &treeBuild{g: g, s: s, dirs: map[string]*treeRec{}}
	if g.last != nil {
		b.prev = g.last.dirs
	}
	if err := b.walk(root, ""); err != nil {
		return nil, err
	}
	snap := &Snapshot{
		Commit:    c.Hash.String(),
		Author:    fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Committer: fmt.Sprintf("%s <%s>", c.Committer.Name, c.Committer.Email),
		Message:   c.Message,
		Time:      c.Committer.When,
	}
	switch g.kind {
	case "commit":
		snap.Revision = "sha1:" + snap.Commit
	default:
		snap.Revision = g.name + "@sha1:" + snap.Commit
	}
	patched := g.last != nil && !b.structural && patchSnapshot(snap, g.last.snap, b.changed)
	if !patched {
		var files []*fileData
		for _, rec := range b.dirs {
			for _, f := range rec.files {
				files = append(files, f.fd)
			}
		}
		newSnapshot(snap, files)
	}
	g.last = &lastBuild{snap: snap, dirs: b.dirs, patched: patched}
	return snap, nil
}

// lastBuild is what the previous build made: its snapshot, and each
// directory it read by prefix ("" for the configured path, "hardware/").
// It is the Git's own (held under t.syncing), and content-addressed, so it
// stays right whatever the cache or the remote do.
type lastBuild struct {
	snap *Snapshot
	dirs map[string]*treeRec
	// patched: snap was made from the snapshot before (patchSnapshot).
	patched bool
}

// treeRec is one directory as a build read it: its tree hash, its files
// (those a snapshot keeps, in name order) and its subdirectories.
type treeRec struct {
	hash    plumbing.Hash
	files   []recFile
	subdirs []recDir
	// size is the total size of the files' contents.
	size int64
}

type recFile struct {
	name string
	hash plumbing.Hash
	fd   *fileData
}

type recDir struct {
	name string
	hash plumbing.Hash
}

// treeBuild is one build's walk.
type treeBuild struct {
	g     *Git
	s     storer.EncodedObjectStorer
	prev  map[string]*treeRec
	dirs  map[string]*treeRec
	total int64
	// changed are the files at a path the previous build had, with new
	// contents; structural is set when a file was added or removed.
	changed    []*fileData
	structural bool
	// byHash is the previous snapshot's contents by blob hash, built once
	// many blobs were read (a branch switched, a revert).
	byHash map[string][]byte
	reads  int
}

// walk reads the directory with tree hash h at prefix.
func (b *treeBuild) walk(h plumbing.Hash, prefix string) error {
	prev := b.prev[prefix]
	if prev != nil && prev.hash == h {
		b.dirs[prefix] = prev
		if err := b.add(prev.size); err != nil {
			return err
		}
		return b.walkSubdirs(prev, prefix)
	}
	rec := &treeRec{hash: h}
	var old []recFile
	if prev != nil {
		old = prev.files
		rec.files = make([]recFile, 0, len(old))
	}
	err := eachTreeEntry(b.s, b.g.packs, h, strings.TrimSuffix(prefix, "/"), func(mode filemode.FileMode, name []byte, eh plumbing.Hash) error {
		if len(name) == 0 || name[0] == '.' {
			return nil // hidden
		}
		switch mode {
		case filemode.Dir:
			rec.subdirs = append(rec.subdirs, recDir{name: string(name), hash: eh})
			return nil
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		default:
			return nil // symbolic links and submodules are left out
		}
		for len(old) > 0 && old[0].name < string(name) {
			old, b.structural = old[1:], true // removed
		}
		f := recFile{hash: eh}
		if len(old) > 0 && old[0].name == string(name) {
			f.name, f.fd = old[0].name, old[0].fd
			if old[0].hash != eh {
				f.fd = nil
			}
			old = old[1:]
		} else {
			f.name, b.structural = string(name), true // added
		}
		if f.fd == nil {
			fd, err := b.read(eh, prefix+f.name)
			if err != nil {
				return err
			}
			f.fd = fd
			if !b.structural {
				b.changed = append(b.changed, fd)
			}
		}
		rec.files = append(rec.files, f)
		rec.size += int64(len(f.fd.data))
		return b.add(int64(len(f.fd.data)))
	})
	if err != nil {
		return err
	}
	if len(old) > 0 || prev == nil || !slices.EqualFunc(prev.subdirs, rec.subdirs, func(a, b recDir) bool { return a.name == b.name }) {
		// Files or directories went, or the directory is new.
		b.structural = true
	}
	b.dirs[prefix] = rec
	return b.walkSubdirs(rec, prefix)
}

func (b *treeBuild) walkSubdirs(rec *treeRec, prefix string) error {
	for _, d := range rec.subdirs {
		if err := b.walk(d.hash, prefix+d.name+"/"); err != nil {
			return err
		}
	}
	return nil
}

// add counts size bytes of files into the snapshot.
func (b *treeBuild) add(size int64) error {
	b.total += size
	if b.total > b.g.cfg.MaxTotalSize {
		return fmt.Errorf("%w: the files under %s hold more than %d bytes", errTooLarge, b.g.path, b.g.cfg.MaxTotalSize)
	}
	return nil
}

// read reads a blob the previous build did not have at that path.
func (b *treeBuild) read(h plumbing.Hash, p string) (*fileData, error) {
	b.reads++
	if b.byHash == nil && b.reads > 64 && b.g.last != nil {
		b.byHash = b.g.last.snap.byHash()
	}
	return b.g.readBlob(b.s, h, p, b.byHash)
}

// readTree reads the content of the tree object h, from the pack files
// directly when packs (nil: none) can.
func readTree(s storer.EncodedObjectStorer, packs *packReader, h plumbing.Hash) ([]byte, error) {
	if packs != nil {
		if data, err := packs.readTree(h); err == nil {
			return data, nil
		}
	}
	o, err := s.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readAllInto(r, make([]byte, 0, o.Size()))
}

// eachTreeEntry calls fn for each entry of the tree h, in the tree's
// order, without go-git's decoding (a string and an entry allocated per
// name, 13 ms for a directory of 10,000 files): the names are only looked
// at, and copied only when new.
// Errors reading the tree name dir ("" for the top).
func eachTreeEntry(s storer.EncodedObjectStorer, packs *packReader, h plumbing.Hash, dir string, fn func(mode filemode.FileMode, name []byte, h plumbing.Hash) error) error {
	raw, err := readTree(s, packs, h)
	if err != nil {
		if dir != "" {
			err = fmt.Errorf("directory %s: %w", dir, err)
		}
		return err
	}
	malformed := fmt.Errorf("tree %s is malformed", h)
	if dir != "" {
		malformed = fmt.Errorf("directory %s: %w", dir, malformed)
	}
	for len(raw) > 0 {
		sp := bytes.IndexByte(raw, ' ')
		if sp <= 0 {
			return malformed
		}
		var mode uint32
		for _, c := range raw[:sp] {
			if c < '0' || c > '7' {
				return malformed
			}
			mode = mode<<3 | uint32(c-'0')
		}
		raw = raw[sp+1:]
		nul := bytes.IndexByte(raw, 0)
		if nul < 0 || len(raw) < nul+1+len(plumbing.ZeroHash) {
			return malformed
		}
		name := raw[:nul]
		var eh plumbing.Hash
		copy(eh[:], raw[nul+1:])
		raw = raw[nul+1+len(eh):]
		if err := fn(filemode.FileMode(mode), name, eh); err != nil {
			return err
		}
	}
	return nil
}

// readBlob reads one file's content, or reuses the previous snapshot's
// bytes for the same blob.
func (g *Git) readBlob(s storer.EncodedObjectStorer, h plumbing.Hash, p string, prev map[string][]byte) (*fileData, error) {
	if data, ok := prev[h.String()]; ok {
		// The bytes are the blob's (they hash to it), so the object
		// store need not be asked: a lookup costs ~50 µs (go-git opens
		// the pack files each time), 1 s for a fleet of 20,000 files on
		// every commit.
		return &fileData{File: File{Path: p, Hash: h.String(), Size: int64(len(data))}, data: data, maxSize: g.cfg.MaxFileSize}, nil
	}
	b, err := object.GetBlob(s, h)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", p, err)
	}
	fd := &fileData{File: File{Path: p, Hash: h.String(), Size: b.Size}, maxSize: g.cfg.MaxFileSize}
	if b.Size > g.cfg.MaxFileSize {
		fd.tooBig = true
		return fd, nil
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", p, err)
	}
	defer r.Close()
	fd.data = make([]byte, 0, b.Size)
	if fd.data, err = readAllInto(r, fd.data); err != nil {
		return nil, fmt.Errorf("file %s: %w", p, err)
	}
	if int64(len(fd.data)) != b.Size {
		return nil, fmt.Errorf("file %s: read %d bytes of %d", p, len(fd.data), b.Size)
	}
	return fd, nil
}
