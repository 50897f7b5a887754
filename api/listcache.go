package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Serving lists from encoded items.
//
// A list of 100 workflows with their runs cost a decode of 100 objects
// and 100 runs from the store, then an encode of the page: 923 requests a
// second. Now the store hands its decodings to the list handlers
// (state.SharedReads: no decode of what it decoded before), and the
// server keeps each listed object's encoded item, with what it was made
// from:
//
//   - the object's resource version (the store gives every write a new
//     one), and what is derived from the object alone (a workflow's
//     latest run number, a machine's MACs);
//   - the stamp of its extras (extrasStamp): for a workflow, the number
//     and resource version of the run it shows; for a machine, the values
//     shown (its workflow run, netboot permission and power state), which
//     come from other records.
//
// A list reads the page from the store and the extras as before, and
// uses a kept item only when both match what it just read: an item is
// never older than the records it is made of, whoever wrote them (the
// API, a sync from Git, the workflow engine), and nothing needs to be told
// of a write. What the cache saves is the decoding and the encoding.

// extras is what a kind shows of an object beyond its stored form (see
// kind.decorate), with what it was derived from.
type extras struct {
	// run is a workflow's latest run, shown with its actions when
	// withActions is set; summarized only when an item is made (see
	// runSummary).
	run         *state.WorkflowRun
	withActions bool
	workflow    *client.HardwareWorkflow
	allowPXE    *bool
	power       *client.PowerStatus
	stamp       extrasStamp
	// derived is what was read from the object itself to find the extras,
	// kept with its item for the next list.
	derived derived
}

// extrasStamp names the inputs of an object's extras: equal stamps, equal
// extras.
type extrasStamp struct {
	// run and runVersion are the number and resource version of the
	// workflow run shown (0: none).
	run        int
	runVersion uint64
	// workflow, allowPXE and power are a machine's extras themselves.
	workflow    client.HardwareWorkflow
	hasWorkflow bool
	allowPXE    int8 // 0 unset, 1 false, 2 true
	power       client.PowerStatus
	hasPower    bool
}

// derived is what the extras of an object read from the object itself.
type derived struct {
	lastRun int      // a workflow's latest run number
	macs    []string // a machine's MACs
}

// apply sets the extras on an object's wire form.
func (e *extras) apply(w *client.Object) {
	if e.run != nil {
		w.Status.Run = runSummary(e.run, e.withActions)
	}
	w.Status.Workflow, w.Status.AllowPXE, w.Status.Power = e.workflow, e.allowPXE, e.power
}

// stampHardware fills in the stamp of a machine's extras from their values.
func (e *extras) stampHardware() {
	if e.workflow != nil {
		e.stamp.workflow, e.stamp.hasWorkflow = *e.workflow, true
	}
	if e.allowPXE != nil {
		e.stamp.allowPXE = 1
		if *e.allowPXE {
			e.stamp.allowPXE = 2
		}
	}
	if e.power != nil {
		e.stamp.power, e.stamp.hasPower = *e.power, true
	}
}

// listItem is an object's encoded list item and what it was made from.
type listItem struct {
	version uint64
	derived derived
	stamp   extrasStamp
	encoded []byte
}

// listCache keeps list items by object key, in two generations that bound
// its memory as the store's cache of decodings does: a full generation
// becomes the old one, whose items move back when listed again.
type listCache struct {
	mu       sync.Mutex
	cur, old map[state.ObjectKey]*listItem
}

// listGeneration is how many items a generation holds: a 10,000-machine
// fleet's hardware or workflows.
const listGeneration = 10240

// lookup returns, per object, its kept item if made from this version of
// it (nil otherwise).
func (c *listCache) lookup(objs []*state.Object) []*listItem {
	out := make([]*listItem, len(objs))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range objs {
		key := o.Key()
		if it := c.cur[key]; it != nil && it.version == o.ResourceVersion {
			out[i] = it
			continue
		}
		if it := c.old[key]; it != nil && it.version == o.ResourceVersion {
			delete(c.old, key)
			c.addLocked(key, it)
			out[i] = it
		}
	}
	return out
}

// keep records items, made from objs[i] at index i (nil items are
// skipped).
func (c *listCache) keep(objs []*state.Object, items []*listItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, it := range items {
		if it != nil {
			c.addLocked(objs[i].Key(), it)
		}
	}
}

func (c *listCache) addLocked(key state.ObjectKey, it *listItem) {
	if c.cur == nil || len(c.cur) >= listGeneration {
		c.old, c.cur = c.cur, make(map[state.ObjectKey]*listItem, min(2*len(c.cur)+16, listGeneration))
	}
	c.cur[key] = it
}

// extrasOf returns the extras of objs (none for a kind without any).
// kept, when not nil, holds per object the list item made from its
// version, whose derived values spare reading the object again.
func (k *kind) extrasOf(ctx context.Context, objs []*state.Object, full bool, kept []*listItem) ([]extras, error) {
	if k.decorate == nil || len(objs) == 0 {
		return make([]extras, len(objs)), nil
	}
	if kept == nil {
		kept = make([]*listItem, len(objs))
	}
	return k.decorate(ctx, objs, full, kept)
}

// listItems returns the encoded list items of objs: kept ones where they
// were made from what the store holds now, new ones otherwise.
func (k *kind) listItems(ctx context.Context, objs []*state.Object) ([][]byte, error) {
	kept := k.s.items.lookup(objs)
	ex, err := k.extrasOf(ctx, objs, false, kept)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(objs))
	made := make([]*listItem, len(objs))
	for i, o := range objs {
		if it := kept[i]; it != nil && it.stamp == ex[i].stamp {
			out[i] = it.encoded
			continue
		}
		w := toWire(o)
		ex[i].apply(&w)
		b, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		out[i] = b
		made[i] = &listItem{version: o.ResourceVersion, derived: ex[i].derived, stamp: ex[i].stamp, encoded: b}
	}
	k.s.items.keep(objs, made)
	return out, nil
}

// maxPooledList is the largest list buffer kept for reuse: a page of
// 5,000 items would otherwise stay in memory for good.
const maxPooledList = 1 << 20

// writeList answers with a list of encoded items: the bytes writeJSON
// would write for the client.List holding them.
func (s *Server) writeList(w http.ResponseWriter, kind, cont string, items [][]byte) error {
	head, err := json.Marshal(client.List{APIVersion: schema.APIVersion, Kind: kind + "List", Metadata: client.ListMeta{Continue: cont}, Items: []client.Object{}})
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	head = bytes.TrimSuffix(head, []byte("]}")) // Items is the last field
	buf, _ := s.listBuffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= maxPooledList {
			s.listBuffers.Put(buf)
		}
	}()
	buf.Reset()
	buf.Write(head)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes()) // the client went away; there is no one left to tell
	return nil
}
