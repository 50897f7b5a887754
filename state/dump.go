package state

import "context"

// DumpItem is one record of a store's whole content, as Dumper yields it
// and Loader takes it: exactly one field is set. A dump is a header, then
// every object, every run and every retained event, each with the resource
// version or sequence number it has, so that a site moving from one backend
// to another keeps its history and its clients' resume points.
type DumpItem struct {
	Header *DumpHeader
	Object *Object
	Run    *WorkflowRun
	Event  *Event
}

// DumpHeader carries what a store keeps besides its records.
type DumpHeader struct {
	// NextSeq and NextRV are the counters: the next event's sequence
	// number and the next resource version.
	NextSeq uint64 `json:"nextSeq"`
	NextRV  uint64 `json:"nextRV"`
	// Oldest is the oldest retained event's sequence number.
	Oldest uint64      `json:"oldest"`
	Sync   *SyncStatus `json:"sync,omitempty"`
}

// Dumper is a store that can yield its whole content from one consistent
// snapshot: the header first, then objects, runs and events in order. fn's
// error stops the dump and is returned.
type Dumper interface {
	Dump(ctx context.Context, fn func(DumpItem) error) error
}

// DumpFunc produces a dump through fn; a Dumper's Dump method bound to its
// store is one.
type DumpFunc func(ctx context.Context, fn func(DumpItem) error) error
