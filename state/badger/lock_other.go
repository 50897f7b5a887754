//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package badger

// dirLock is a no-op where flock(2) is unavailable; Badger's own directory
// lock still refuses a second open there.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() {}
