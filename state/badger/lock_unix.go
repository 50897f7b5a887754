//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package badger

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/tinkops/tinkops/state"
)

// lockFile is our own lock, taken before anything reads the directory: Badger
// takes its lock only inside badger.Open, after our integrity check would
// already have read files that another process is changing.
const lockFile = "tinkops.lock"

// dirLock is an flock(2) on lockFile. The kernel drops it when the process
// dies, so a crash never leaves a stale lock behind, and a second open fails
// at once instead of waiting.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, state.Errorf(state.EINTERNAL, "lock state directory %s: %v", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = " (pid " + strconv.Itoa(pid) + ")"
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, state.Errorf(state.ECONFLICT,
				"state directory %s is in use by another process%s; stop it or use another directory", dir, holder)
		}
		return nil, state.Errorf(state.EINTERNAL, "lock state directory %s: %v", dir, err)
	}
	// The pid is a courtesy for the error message above; the lock itself
	// is the flock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
