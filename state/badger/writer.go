package badger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// Group commit.
//
// With SyncWrites, Badger syncs its log once per transaction, so a
// transaction per Apply caps durable throughput at the disk's sync rate (a few
// thousand per second here). Instead, one writer goroutine takes every
// pending Apply from a channel (up to Options.MaxGroup at a time), checks and
// writes them in as few transactions as fit, and acknowledges them all after
// the sync. Callers that arrive during a sync form the next group, so the
// group size adapts to the load.
//
// The writer is also the only place that assigns sequence numbers and
// resource versions, in commit order, which is what makes the event log
// gap-free and ordered.

const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// request is one Apply call waiting for the writer.
type request struct {
	batch *state.Batch
	// status lets a caller whose context ends withdraw a request the
	// writer has not taken yet, so that "context error" always means
	// "not written".
	status atomic.Int32
	done   chan outcome
}

type outcome struct {
	res *state.Result
	err error
}

func (r *request) reply(res *state.Result, err error) { r.done <- outcome{res, err} }

// entry is one key write of a prepared batch.
type entry struct {
	key   []byte
	value []byte
	del   bool
}

// prepared is a batch checked against the current state and turned into key
// writes, with its sequence numbers and resource versions assigned.
type prepared struct {
	req     *request
	entries []entry
	size    int64 // Badger's estimate of the transaction size
	result  *state.Result
	after   counters // counters once this batch is committed
	// runs are copies of result's runs for the writer's cache.
	runs []*state.WorkflowRun
}

func (p *prepared) set(key, value []byte) {
	p.entries = append(p.entries, entry{key: key, value: value})
	p.size += entrySize(key, value)
}

func (p *prepared) del(key []byte) {
	p.entries = append(p.entries, entry{key: key, del: true})
	p.size += entrySize(key, nil)
}

// entrySize mirrors Badger's accounting in Txn.checkSize (key, value, two
// meta bytes and ten bytes of version; a value of valueThreshold bytes or
// more goes to the value log and counts as a 12-byte pointer), so that a
// transaction built within our budget never hits ErrTxnTooBig.
func entrySize(key, value []byte) int64 {
	if len(value) >= valueThreshold {
		return int64(len(key)) + 12 + 12
	}
	return int64(len(key)+len(value)) + 12
}

// writer owns the counters; only its goroutine touches them.
type writer struct {
	s *Store
	// next is what the next prepared batch gets; committed what is on
	// disk. They differ only while a transaction is being built.
	next, committed counters
	group           []*request
	// runs holds, decoded, the record last committed of runs that have
	// not ended (at most maxCachedRuns of them), so that the next write of
	// a run, a worker's report among thousands a second, checks its
	// precondition and works out its events without reading and decoding
	// the record it replaces (most of a write's cost). Only the writer
	// writes runs (LoadDir fills a new store before any write), so an
	// entry is exactly what is stored.
	runs map[state.RunKey]*state.WorkflowRun
	// scratch is encodeEach's on the writer's goroutine.
	scratch encodeScratch
}

// maxCachedRuns bounds the writer's cache of runs: a fleet's runs in
// progress at once, typically; beyond it, runs are read from Badger.
const maxCachedRuns = 4096

// storedRun returns run key as it is once t is committed: prepared in t,
// else as last committed (from the cache, else from Badger).
func (w *writer) storedRun(t *pendingTxn, key state.RunKey) (*state.WorkflowRun, error) {
	if r, ok := t.runs[key]; ok {
		return r, nil
	}
	if r, ok := w.runs[key]; ok {
		return r, nil
	}
	return readRun(t.txn, runKey(key), key)
}

// cacheRuns records the runs of committed batches (the callers' copies,
// which Apply hands back, are not shared with the cache).
func (w *writer) cacheRuns(items []*prepared) {
	if w.runs == nil {
		w.runs = map[state.RunKey]*state.WorkflowRun{}
	}
	for _, p := range items {
		for _, r := range p.runs {
			key := r.Key()
			if r.State.Terminal() {
				delete(w.runs, key)
				continue
			}
			if _, ok := w.runs[key]; !ok && len(w.runs) >= maxCachedRuns {
				for k := range w.runs {
					delete(w.runs, k) // any one: map order is random
					break
				}
			}
			w.runs[key] = r
		}
	}
}

// copyRun returns a copy of r that shares nothing Stage reads with r.
func copyRun(r *state.WorkflowRun) *state.WorkflowRun {
	c := *r
	c.Actions = slices.Clone(r.Actions)
	c.Machines = slices.Clone(r.Machines)
	return &c
}

func (w *writer) run(ctx context.Context) {
	for {
		var first *request
		select {
		case <-ctx.Done():
			return
		case first = <-w.s.reqs:
		}
		w.group = append(w.group[:0], first)
	drain:
		for len(w.group) < w.s.opts.MaxGroup {
			select {
			case r := <-w.s.reqs:
				w.group = append(w.group, r)
			default:
				break drain
			}
		}
		w.commitGroup(w.group)
		clear(w.group)
	}
}

// pendingTxn is a Badger transaction being filled with prepared batches.
type pendingTxn struct {
	txn   *badgerdb.Txn
	items []*prepared
	size  int64
	count int64
	// runs are the runs its batches write, as written (see storedRun).
	runs map[state.RunKey]*state.WorkflowRun
}

func (w *writer) begin() *pendingTxn {
	return &pendingTxn{txn: w.s.db.NewTransaction(true)}
}

// add puts p, whose entries t.txn holds, into t.
func (t *pendingTxn) add(p *prepared, n int64) {
	t.items = append(t.items, p)
	t.size += p.size
	t.count += n
	for _, r := range p.runs {
		if t.runs == nil {
			t.runs = map[state.RunKey]*state.WorkflowRun{}
		}
		t.runs[r.Key()] = r
	}
}

func (w *writer) commitGroup(group []*request) {
	w.s.stats.Groups.Add(1)
	t := w.begin()
	for i, r := range group {
		if !r.status.CompareAndSwap(reqQueued, reqTaken) {
			continue // the caller gave up before we got to it
		}
		if e := w.s.broken.Load(); e != nil {
			r.reply(nil, e)
			continue
		}
		p, err := w.prepare(t, r.batch)
		if err != nil {
			r.reply(nil, err)
			continue
		}
		p.req = r
		n := int64(len(p.entries)) + 1 // and the counters
		if p.size > w.s.maxBytes || n > w.s.maxEntries {
			// Too big for one transaction: commit what we have, then
			// write this batch through the staging area.
			if !w.commit(t) {
				w.failRest(p, group[i+1:])
				return
			}
			w.commitSplit(p)
			t = w.begin()
			continue
		}
		if t.size+p.size > w.s.maxBytes || t.count+n > w.s.maxEntries {
			if !w.commit(t) {
				w.failRest(p, group[i+1:])
				return
			}
			t = w.begin()
		}
		if err := addEntries(t.txn, p.entries); err != nil {
			// Our size estimate was wrong; nothing of this transaction is
			// written, so fail its batches and carry on.
			t.items = append(t.items, p)
			w.abort(t, wrapInternal(err, "write batch in %s", w.s.dir))
			t = w.begin()
			continue
		}
		t.add(p, n)
	}
	w.commit(t)
}

func addEntries(txn *badgerdb.Txn, entries []entry) error {
	for _, e := range entries {
		var err error
		if e.del {
			err = txn.Delete(e.key)
		} else {
			err = txn.Set(e.key, e.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commit commits t and acknowledges its batches. It returns false if the
// commit failed, which breaks the store: batches prepared after t assumed t
// was written, and Badger may have written part of t's log record.
func (w *writer) commit(t *pendingTxn) bool {
	defer t.txn.Discard()
	if len(t.items) == 0 {
		return true
	}
	last := t.items[len(t.items)-1].after
	err := t.txn.Set([]byte(keyCounters), last.encode())
	if err == nil {
		err = t.txn.Commit()
	}
	if err != nil {
		e := state.Errorf(state.EINTERNAL, "commit to %s failed, reopen the store: %v", w.s.dir, err)
		w.s.broken.Store(e)
		w.abort(t, e)
		return false
	}
	w.committed = last
	w.s.stats.Txns.Add(1)
	w.cacheRuns(t.items)
	w.acknowledge(t.items)
	return true
}

// abort fails every batch of t and rewinds the counters to what is on disk.
func (w *writer) abort(t *pendingTxn, err error) {
	t.txn.Discard()
	w.next = w.committed
	for _, p := range t.items {
		p.req.reply(nil, err)
	}
}

// failRest fails p and the requests after it once the store broke.
func (w *writer) failRest(p *prepared, rest []*request) {
	err := w.s.broken.Load()
	p.req.reply(nil, err)
	for _, r := range rest {
		if r.status.CompareAndSwap(reqQueued, reqTaken) {
			r.reply(nil, err)
		}
	}
}

// acknowledge publishes the events of committed batches to watchers and
// answers their callers, in commit order.
func (w *writer) acknowledge(items []*prepared) {
	for _, p := range items {
		w.s.hub.Publish(p.result.Events)
	}
	for _, p := range items {
		w.s.stats.Batches.Add(1)
		p.req.reply(p.result, nil)
	}
}

// prepare checks b against the state visible in t (which includes the
// batches before it in the same group) and turns it into key writes. On error
// nothing is assigned: the counters are only advanced on success.
func (w *writer) prepare(t *pendingTxn, b *state.Batch) (*prepared, error) {
	st, err := state.Stage(b, w.s.opts.Now(), state.Counters{NextSeq: w.next.NextSeq, NextRV: w.next.NextRV},
		func(k state.ObjectKey) (*state.Object, error) { return readObject(t.txn, objectKey(k), k) },
		func(k state.RunKey) (*state.WorkflowRun, error) { return w.storedRun(t, k) })
	if err != nil {
		return nil, err
	}
	res := st.Result
	nObj, nRun := len(res.Objects), len(res.Runs)
	// Each record is encoded and packed on its own (a fleet's first sync:
	// 200,000 objects and as many events, seconds of encoding on the
	// writer's goroutine), then put in the batch in order.
	vals := make([][]byte, nObj+nRun+len(res.Events))
	err = w.encodeEach(len(vals), func(i int, scratch *encodeScratch) (err error) {
		switch {
		case i < nObj:
			if st.Deleted[i] {
				return nil
			}
			obj := res.Objects[i]
			v, err := w.encode(obj.Key(), obj, nil)
			if err != nil {
				return err
			}
			vals[i] = pack(&scratch.pack, v)
		case i < nObj+nRun:
			// A run's JSON (5 KB for 20 actions, rewritten at every
			// transition) is built in the scratch buffer: the batch keeps
			// only its packed copy, or a copy of its own when it is not
			// packed.
			run := res.Runs[i-nObj]
			v, ok := appendRun(scratch.record[:0], run)
			if ok {
				scratch.record = v
			} else {
				v = nil // json.Marshal says what is wrong
			}
			if v, err = w.encode(run.Key(), run, v); err != nil {
				return err
			}
			packed := pack(&scratch.pack, v)
			if ok && len(packed) > 0 && &packed[0] == &scratch.record[0] {
				packed = bytes.Clone(packed)
			}
			vals[i] = packed
		default:
			ev := &res.Events[i-nObj-nRun]
			v, ok := appendEvent(make([]byte, 0, 256), ev)
			if !ok {
				if v, err = json.Marshal(ev); err != nil {
					return state.Errorf(state.EINVALID, "event %d: encode: %v", i-nObj-nRun, err)
				}
			}
			vals[i] = pack(&scratch.pack, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p := &prepared{result: res, entries: make([]entry, 0, len(vals)+1)}
	for i, obj := range res.Objects {
		if st.Deleted[i] {
			p.del(objectKey(obj.Key()))
			continue
		}
		p.set(objectKey(obj.Key()), vals[i])
	}
	for i, run := range res.Runs {
		p.set(runKey(run.Key()), vals[nObj+i])
		p.runs = append(p.runs, copyRun(run))
	}
	if b.Sync != nil {
		v, err := json.Marshal(b.Sync)
		if err != nil {
			return nil, state.Errorf(state.EINVALID, "sync status: encode: %v", err)
		}
		p.set([]byte(keySync), v)
	}
	for i := range res.Events {
		p.set(eventKey(res.Events[i].Seq), vals[nObj+nRun+i])
	}
	p.after = counters{NextSeq: st.Counters.NextSeq, NextRV: st.Counters.NextRV}
	w.next = p.after
	return p, nil
}

// encodeScratch is reused between the records one goroutine encodes:
// pack's output buffer, and a record's JSON.
type encodeScratch struct{ pack, record []byte }

// encodeEach calls fn for 0..n-1, each call with scratch buffers, and
// returns the error of the lowest i that failed. A batch of
// fewer than parallelRecords records (every worker's report) is encoded
// on the writer's goroutine with its buffer; a larger one on every core,
// each goroutine with a buffer of its own.
func (w *writer) encodeEach(n int, fn func(i int, scratch *encodeScratch) error) error {
	if n < parallelRecords {
		for i := range n {
			if err := fn(i, &w.scratch); err != nil {
				return err
			}
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), n/parallelRecords)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch encodeScratch
			// Contiguous ranges: the lowest failing i of each range is
			// its first failure.
			for i := g * n / workers; i < (g+1)*n/workers; i++ {
				if err := fn(i, &scratch); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // ranges are in order: the first one set holds the lowest i
		}
	}
	return nil
}

// parallelRecords is the smallest batch whose records are encoded on
// several cores, and the least each core then takes.
const parallelRecords = 512

// encode returns an object's or run's record (b when it is already
// encoded), refusing one past the store's value limit.
func (w *writer) encode(key fmt.Stringer, v any, b []byte) ([]byte, error) {
	if b == nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, state.Errorf(state.EINVALID, "%s: encode: %v", key, err)
		}
	}
	if int64(len(b)) > w.s.maxValue {
		return nil, state.Errorf(state.EINVALID, "%s: %d bytes encoded, more than the limit of %d", key, len(b), w.s.maxValue)
	}
	return b, nil
}
