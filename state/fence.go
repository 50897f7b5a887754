package state

import "context"

// Fence is a leader's claim on a write: the write may happen only while the
// lease named Lease still carries Token. A store shared by several replicas
// (state/postgres) checks it in the writing transaction and refuses the
// write with ECONFLICT once another replica has taken the lease over, so a
// leader that was paused or cut off cannot write after its lease ended. A
// store that only one process opens (state/badger) has no other leader to
// fear and ignores it.
type Fence struct {
	Lease string
	Token uint64
}

type fenceKey struct{}

// WithFence returns ctx carrying f: Store.Apply with that context writes
// only while f holds.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}
