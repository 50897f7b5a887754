package gitsource

// Backoff exposes the retry delay computation to the tests.
var Backoff = backoff

// SetMaxPacks lowers the pack count that makes g start its cache afresh.
func SetMaxPacks(g *Git, n int) { g.maxPacks = n }

// CacheDirOf is the bare repository g caches objects in.
func CacheDirOf(g *Git) string { return g.cacheDir }

// LastBuildPatched reports whether g's latest snapshot was made by patching
// the one before (a commit that only edited files) rather than indexed anew.
func LastBuildPatched(g *Git) bool { return g.last != nil && g.last.patched }
