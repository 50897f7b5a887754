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
