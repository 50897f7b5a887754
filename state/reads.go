package state

import "context"

type sharedKey struct{}

// SharedReads returns ctx carrying the caller's promise that it does not
// modify what GetObject, ListObjects, GetRun and ListRuns return with that
// context (nor the maps and slices inside). A store may then return
// decodings it keeps and hands to every such reader, so that reading a
// page it served before costs a key scan, not a decode per record; it
// still returns exactly what is stored now. The API's read handlers use
// it; writers, which change what they read, must not.
func SharedReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, sharedKey{}, true)
}

// ReadsShared reports whether ctx carries SharedReads' promise.
func ReadsShared(ctx context.Context) bool {
	v, _ := ctx.Value(sharedKey{}).(bool)
	return v
}

// RunsGetter is implemented by stores that read several runs in one
// snapshot for less than a GetRun each (state/badger): a list reads the
// latest runs of its page with it.
type RunsGetter interface {
	// GetRuns returns the runs with keys, in their order, nil for a key
	// with no run. EINVALID if a key is malformed.
	GetRuns(ctx context.Context, keys []RunKey) ([]*WorkflowRun, error)
}

// OwnReads returns ctx without SharedReads' promise: reads with it get
// decodings of their own, and add none to what a store keeps for shared
// readers. The API's fleet index reads the whole store with it when a
// list builds the index, which would otherwise push a page's records out
// of that cache with every other record.
func OwnReads(ctx context.Context) context.Context {
	if !ReadsShared(ctx) {
		return ctx
	}
	return context.WithValue(ctx, sharedKey{}, false)
}
