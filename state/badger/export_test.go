package badger

import "context"

// OpenWithHook is Open with a hook called at named points of split commits
// ("split:staged", "split:marked", "split:applied:N", "split:done") and of
// recovery ("recover:applied:N"), so that tests can crash the process there.
func OpenWithHook(ctx context.Context, dir string, opts Options, hook func(point string)) (*Store, error) {
	return open(ctx, dir, opts, hook)
}
