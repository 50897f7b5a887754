package schema

import (
	"io/fs"
	"sync"
)

// HashFS is a file system that knows a hash of each file's content (the
// Git blob hash, for a Git snapshot). Loading one, a Loader parses a file
// again only when its hash changed since the last Load, and renders a
// workflow's template again only when the template, the hardware or the
// workflow changed (see renderCache), so a commit that changes one file
// costs one file's parse and the renderings it reaches; when the change
// keeps every name, MAC, IP and reference, the set-wide checks too run
// only on what it reaches (see loadIncremental), else on the whole set.
type HashFS interface {
	fs.FS
	// FileHash returns the content hash of the named file.
	FileHash(name string) (hash string, ok bool)
}

// fileCache keeps the last result per file path and content hash. Cached
// objects are never handed out: each Load gets copies, because the
// set-wide checks and tink.cue defaults write into the objects of a Set.
type fileCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	hash string
	res  fileResult
}

// getAll fills results with copies of the cached results of files whose
// hash is unchanged. It returns each file's hash ("" when fsys does not
// know it) and the indexes of the files to parse.
func (c *fileCache) getAll(fsys HashFS, files []string, results []fileResult) (hashes []string, misses []int) {
	hashes = make([]string, len(files))
	hits := make([]bool, len(files))
	c.mu.Lock()
	for i, name := range files {
		hash, ok := fsys.FileHash(name)
		if !ok {
			misses = append(misses, i)
			continue
		}
		hashes[i] = hash
		if e, ok := c.entries[name]; ok && e.hash == hash {
			results[i], hits[i] = e.res, true
		} else {
			misses = append(misses, i)
		}
	}
	c.mu.Unlock()
	for i, hit := range hits {
		if !hit {
			continue
		}
		cached := results[i].objects
		results[i].objects = make([]Object, len(cached))
		for j, o := range cached {
			results[i].objects[j] = copyObject(o)
		}
	}
	return hashes, misses
}

// put stores a result; its objects are copied so later changes to the
// returned ones do not reach the cache.
func (c *fileCache) put(name, hash string, res fileResult) {
	stored := fileResult{errs: res.errs, ignored: res.ignored, objects: make([]Object, len(res.objects))}
	for i, o := range res.objects {
		stored.objects[i] = copyObject(o)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cacheEntry{}
	}
	c.entries[name] = cacheEntry{hash: hash, res: stored}
	c.mu.Unlock()
}

// keep drops entries for files no longer in the repository. hashes[i] is
// the hash of names[i], "" if unknown (such files are not cached).
func (c *fileCache) keep(names, hashes []string) {
	cached := 0
	for _, h := range hashes {
		if h != "" {
			cached++
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Every file with a hash has its entry by now: when there are no
	// more entries than those, none is stale.
	if len(c.entries) <= cached {
		return
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	for n := range c.entries {
		if !present[n] {
			delete(c.entries, n)
		}
	}
}

// copyObject copies what Load may change in an object after decoding:
// metadata (defaults), the inline BMC block (defaults), a workflow's
// bootOptions (defaults) and its rendering. Everything else is read only
// once decoded and may be shared.
func copyObject(o Object) Object {
	switch x := o.(type) {
	case *Hardware:
		c := *x
		if x.Spec.BMC != nil {
			b := *x.Spec.BMC
			c.Spec.BMC = &b
		}
		return &c
	case *Template:
		c := *x
		return &c
	case *Workflow:
		c := *x
		c.Rendered = nil
		return &c
	case *Machine:
		c := *x
		return &c
	case *WorkflowSet:
		c := *x
		return &c
	}
	return o
}
