package schema

import (
	"io/fs"
	"sync"
)

// HashFS is a file system that knows a hash of each file's content (the
// Git blob hash, for a Git snapshot). Loading one, a Loader parses a file
// again only when its hash changed since the last Load, so a commit that
// changes one file costs one file's parse plus the set-wide checks.
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

// get returns a copy of the cached result for (name, hash).
func (c *fileCache) get(name, hash string) (fileResult, bool) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if !ok || e.hash != hash {
		return fileResult{}, false
	}
	out := fileResult{errs: e.res.errs, ignored: e.res.ignored, objects: make([]Object, len(e.res.objects))}
	for i, o := range e.res.objects {
		out.objects[i] = copyObject(o)
	}
	return out, true
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

// keep drops entries for files no longer in the repository.
func (c *fileCache) keep(names []string) {
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	c.mu.Lock()
	for n := range c.entries {
		if !present[n] {
			delete(c.entries, n)
		}
	}
	c.mu.Unlock()
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
	}
	return o
}
