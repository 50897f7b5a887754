package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tinkops/tinkops/state"
)

// maxDoc caps one encoded object or run, as Badger's transaction limit caps
// it there: a document this large is a mistake, not a machine.
const maxDoc = 2 << 20

const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// request is one Apply call waiting for the writer.
type request struct {
	batch *state.Batch
	fence *state.Fence
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

// Apply implements state.Store: it hands the batch to the writer goroutine
// and waits for the group commit that includes it. With a fence in ctx
// (state.WithFence) the batch is written only while the fence holds.
func (s *Store) Apply(ctx context.Context, b *state.Batch) (*state.Result, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	r := &request{batch: b, done: make(chan outcome, 1)}
	if f, ok := state.FenceFrom(ctx); ok {
		r.fence = &f
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case out := <-r.done:
		return out.res, out.err
	case <-ctx.Done():
		if r.status.CompareAndSwap(reqQueued, reqAbandoned) {
			return nil, ctx.Err()
		}
		out := <-r.done
		return out.res, out.err
	}
}

// PutObject implements state.Store.
func (s *Store) PutObject(ctx context.Context, actor state.Actor, obj *state.Object) (*state.Object, error) {
	return state.PutObject(ctx, s, actor, obj)
}

// DeleteObject implements state.Store.
func (s *Store) DeleteObject(ctx context.Context, actor state.Actor, key state.ObjectKey, resourceVersion uint64) error {
	return state.DeleteObject(ctx, s, actor, key, resourceVersion)
}

// PutRun implements state.Store.
func (s *Store) PutRun(ctx context.Context, actor state.Actor, run *state.WorkflowRun) (*state.WorkflowRun, error) {
	return state.PutRun(ctx, s, actor, run)
}

// writer is the goroutine that commits batches.
type writer struct {
	s     *Store
	group []*request
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
		taken := w.group[:0]
		for _, r := range w.group {
			if r.status.CompareAndSwap(reqQueued, reqTaken) {
				taken = append(taken, r)
			}
		}
		if len(taken) > 0 {
			w.commitGroup(taken)
		}
		clear(w.group)
	}
}

// staged is one accepted batch of a group.
type staged struct {
	req *request
	st  *state.Staged
}

// groupState is what a group's transaction sees: the stored rows it read,
// updated by the batches accepted so far.
type groupState struct {
	objects map[state.ObjectKey]*state.Object // nil value: absent
	runs    map[state.RunKey]*state.WorkflowRun
	dirtyO  map[state.ObjectKey]bool
	dirtyR  map[state.RunKey]bool
	sync    *state.SyncStatus
}

// commitGroup writes the group in one transaction. A database failure fails
// every batch of the group (none is written); a failed precondition fails
// only its own batch.
func (w *writer) commitGroup(group []*request) {
	s := w.s
	// The transaction is bounded by its own deadline, not the callers':
	// a caller whose context ends while we write still gets the outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	accepted, err := w.write(ctx, group)
	if err != nil {
		for _, r := range group {
			r.reply(nil, err)
		}
		return
	}
	for _, a := range accepted {
		s.hub.Publish(a.st.Result.Events)
	}
	for _, a := range accepted {
		a.req.reply(a.st.Result, nil)
	}
}

// write runs the group's transaction and returns the batches it committed,
// having already answered those that failed their preconditions. On error
// nothing was committed (or, if the connection broke during COMMIT, it is
// unknown: the error says the database is unavailable and a retry finds
// out through the resource versions).
func (w *writer) write(ctx context.Context, group []*request) ([]staged, error) {
	s := w.s
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, s.wrap(err, "write to PostgreSQL %s", s.where)
	}
	defer tx.Rollback(context.Background())

	var nextSeq, nextRV int64
	if err := tx.QueryRow(ctx, "SELECT next_seq, next_rv FROM counters WHERE id = 1 FOR UPDATE").Scan(&nextSeq, &nextRV); err != nil {
		return nil, s.wrap(err, "lock counters of %s", s.where)
	}
	c := state.Counters{NextSeq: uint64(nextSeq), NextRV: uint64(nextRV)}
	fences, err := w.readFences(ctx, tx, group)
	if err != nil {
		return nil, err
	}
	gs, err := w.readRows(ctx, tx, group)
	if err != nil {
		return nil, err
	}

	now := s.opts.Now()
	var accepted []staged
	var rejected []*request
	var rejections []error
	for _, r := range group {
		if r.fence != nil {
			if err := fences.check(*r.fence); err != nil {
				rejected, rejections = append(rejected, r), append(rejections, err)
				continue
			}
		}
		st, err := state.Stage(r.batch, now, c,
			func(k state.ObjectKey) (*state.Object, error) { return gs.objects[k], nil },
			func(k state.RunKey) (*state.WorkflowRun, error) { return gs.runs[k], nil })
		if err == nil {
			err = checkSizes(st)
		}
		if err != nil {
			rejected, rejections = append(rejected, r), append(rejections, err)
			continue
		}
		for i, o := range st.Result.Objects {
			k := o.Key()
			if st.Deleted[i] {
				gs.objects[k] = nil
			} else {
				gs.objects[k] = o
			}
			gs.dirtyO[k] = true
		}
		for _, run := range st.Result.Runs {
			gs.runs[run.Key()] = run
			gs.dirtyR[run.Key()] = true
		}
		if r.batch.Sync != nil {
			gs.sync = r.batch.Sync
		}
		c = st.Counters
		accepted = append(accepted, staged{req: r, st: st})
	}
	// Answer the rejected now: whatever happens to the transaction, they
	// were not written.
	for i, r := range rejected {
		r.reply(nil, rejections[i])
	}
	if len(accepted) == 0 {
		return nil, nil
	}
	if err := w.writeRows(ctx, tx, gs, accepted, c); err != nil {
		w.failAccepted(accepted, err)
		return nil, nil
	}
	if err := tx.Commit(ctx); err != nil {
		w.failAccepted(accepted, s.wrap(err, "commit to PostgreSQL %s", s.where))
		return nil, nil
	}
	return accepted, nil
}

func (w *writer) failAccepted(accepted []staged, err error) {
	for _, a := range accepted {
		a.req.reply(nil, err)
	}
}

// checkSizes refuses documents past maxDoc, naming the object or run.
func checkSizes(st *state.Staged) error {
	for i, o := range st.Result.Objects {
		if st.Deleted[i] {
			continue
		}
		v, err := json.Marshal(o)
		if err != nil {
			return state.Errorf(state.EINVALID, "%s: encode: %v", o.Key(), err)
		}
		if len(v) > maxDoc {
			return state.Errorf(state.EINVALID, "%s: %d bytes encoded, more than the limit of %d", o.Key(), len(v), maxDoc)
		}
	}
	for _, r := range st.Result.Runs {
		v, err := json.Marshal(r)
		if err != nil {
			return state.Errorf(state.EINVALID, "%s: encode: %v", r.Key(), err)
		}
		if len(v) > maxDoc {
			return state.Errorf(state.EINVALID, "%s: %d bytes encoded, more than the limit of %d", r.Key(), len(v), maxDoc)
		}
	}
	return nil
}

// fenceState is the leases the group's fences name, as locked by the
// transaction.
type fenceState map[string]leaseRow

type leaseRow struct {
	token int64
	live  bool
}

func (f fenceState) check(want state.Fence) error {
	row, ok := f[want.Lease]
	switch {
	case !ok || int64(want.Token) != row.token:
		return state.Errorf(state.ECONFLICT, "lease %s: fencing token %d is no longer current: another replica took over; nothing written", want.Lease, want.Token)
	case !row.live:
		return state.Errorf(state.ECONFLICT, "lease %s: expired before this write (token %d); nothing written", want.Lease, want.Token)
	}
	return nil
}

// readFences locks the leases the group's fences name (FOR SHARE), so that
// no replica can take one over before this transaction commits.
func (w *writer) readFences(ctx context.Context, tx pgx.Tx, group []*request) (fenceState, error) {
	var names []string
	seen := map[string]bool{}
	for _, r := range group {
		if r.fence != nil && !seen[r.fence.Lease] {
			seen[r.fence.Lease] = true
			names = append(names, r.fence.Lease)
		}
	}
	f := fenceState{}
	if len(names) == 0 {
		return f, nil
	}
	rows, err := tx.Query(ctx, "SELECT name, token, expires_at > clock_timestamp() FROM leases WHERE name = ANY($1) FOR SHARE", names)
	if err != nil {
		return nil, w.s.wrap(err, "read leases in %s", w.s.where)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var row leaseRow
		if err := rows.Scan(&name, &row.token, &row.live); err != nil {
			return nil, w.s.wrap(err, "read leases in %s", w.s.where)
		}
		f[name] = row
	}
	return f, w.s.wrap(rows.Err(), "read leases in %s", w.s.where)
}

// readRows reads every object and run the group names.
func (w *writer) readRows(ctx context.Context, tx pgx.Tx, group []*request) (*groupState, error) {
	s := w.s
	gs := &groupState{
		objects: map[state.ObjectKey]*state.Object{},
		runs:    map[state.RunKey]*state.WorkflowRun{},
		dirtyO:  map[state.ObjectKey]bool{},
		dirtyR:  map[state.RunKey]bool{},
	}
	var ok, on, oname []string
	var rn, rw []string
	var rnum []int32
	for _, r := range group {
		for _, op := range r.batch.Objects {
			k := op.Object.Key()
			if _, dup := gs.objects[k]; !dup {
				gs.objects[k] = nil
				ok, on, oname = append(ok, k.Kind), append(on, k.Namespace), append(oname, k.Name)
			}
		}
		for _, run := range r.batch.Runs {
			k := run.Key()
			if _, dup := gs.runs[k]; !dup {
				gs.runs[k] = nil
				rn, rw, rnum = append(rn, k.Namespace), append(rw, k.Workflow), append(rnum, int32(k.Number))
			}
		}
	}
	if len(ok) > 0 {
		rows, err := tx.Query(ctx, `SELECT o.doc FROM objects o
			JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(kind, namespace, name)
			ON o.kind = k.kind AND o.namespace = k.namespace AND o.name = k.name`, ok, on, oname)
		if err != nil {
			return nil, s.wrap(err, "read objects in %s", s.where)
		}
		for rows.Next() {
			var doc []byte
			if err := rows.Scan(&doc); err != nil {
				rows.Close()
				return nil, s.wrap(err, "read objects in %s", s.where)
			}
			var o state.Object
			if err := json.Unmarshal(doc, &o); err != nil {
				rows.Close()
				return nil, state.Errorf(state.EINTERNAL, "stored object does not decode: %v", err)
			}
			gs.objects[o.Key()] = &o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err, "read objects in %s", s.where)
		}
	}
	if len(rn) > 0 {
		rows, err := tx.Query(ctx, `SELECT r.doc FROM runs r
			JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(namespace, workflow, number)
			ON r.namespace = k.namespace AND r.workflow = k.workflow AND r.number = k.number`, rn, rw, rnum)
		if err != nil {
			return nil, s.wrap(err, "read runs in %s", s.where)
		}
		for rows.Next() {
			var doc []byte
			if err := rows.Scan(&doc); err != nil {
				rows.Close()
				return nil, s.wrap(err, "read runs in %s", s.where)
			}
			var r state.WorkflowRun
			if err := json.Unmarshal(doc, &r); err != nil {
				rows.Close()
				return nil, state.Errorf(state.EINTERNAL, "stored run does not decode: %v", err)
			}
			gs.runs[r.Key()] = &r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err, "read runs in %s", s.where)
		}
	}
	return gs, nil
}

// writeRows writes the final state of every object and run the accepted
// batches changed, their events, the sync status and the counters, and
// notifies listeners, in one round trip.
func (w *writer) writeRows(ctx context.Context, tx pgx.Tx, gs *groupState, accepted []staged, c state.Counters) error {
	s := w.s
	var b pgx.Batch

	var puts objectColumns
	var dk, dn, dname []string
	for k := range gs.dirtyO {
		o := gs.objects[k]
		if o == nil {
			dk, dn, dname = append(dk, k.Kind), append(dn, k.Namespace), append(dname, k.Name)
			continue
		}
		if err := puts.add(o); err != nil {
			return err
		}
	}
	if len(dk) > 0 {
		b.Queue(`DELETE FROM objects o USING unnest($1::text[], $2::text[], $3::text[]) AS k(kind, namespace, name)
			WHERE o.kind = k.kind AND o.namespace = k.namespace AND o.name = k.name`, dk, dn, dname)
	}
	puts.queue(&b)
	var runs runColumns
	for k := range gs.dirtyR {
		if err := runs.add(gs.runs[k]); err != nil {
			return err
		}
	}
	runs.queue(&b)

	ev := eventColumns{}
	for _, a := range accepted {
		for i := range a.st.Result.Events {
			if err := ev.add(&a.st.Result.Events[i]); err != nil {
				return err
			}
		}
	}
	ev.queue(&b)
	if gs.sync != nil {
		doc, err := json.Marshal(gs.sync)
		if err != nil {
			return state.Errorf(state.EINVALID, "sync status: encode: %v", err)
		}
		b.Queue(`INSERT INTO sync_status (id, doc) VALUES (1, $1::json)
			ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, string(doc))
	}
	b.Queue("UPDATE counters SET next_seq = $1, next_rv = $2 WHERE id = 1", int64(c.NextSeq), int64(c.NextRV))
	b.Queue("SELECT pg_notify($1, $2)", s.notify, strconv.FormatUint(c.NextSeq, 10))
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return s.wrap(err, "write to PostgreSQL %s", s.where)
	}
	return nil
}

// objectColumns collects objects for one multi-row upsert.
type objectColumns struct {
	kind, namespace, name []string
	rv                    []int64
	doc                   []string
}

func (c *objectColumns) add(o *state.Object) error {
	doc, err := json.Marshal(o)
	if err != nil {
		return state.Errorf(state.EINTERNAL, "%s: encode: %v", o.Key(), err)
	}
	c.kind, c.namespace, c.name = append(c.kind, o.Kind), append(c.namespace, o.Namespace), append(c.name, o.Name)
	c.rv, c.doc = append(c.rv, int64(o.ResourceVersion)), append(c.doc, string(doc))
	return nil
}

func (c *objectColumns) queue(b *pgx.Batch) {
	if len(c.kind) == 0 {
		return
	}
	b.Queue(`INSERT INTO objects (kind, namespace, name, resource_version, doc)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::json[])
		ON CONFLICT (kind, namespace, name) DO UPDATE SET resource_version = excluded.resource_version, doc = excluded.doc`,
		c.kind, c.namespace, c.name, c.rv, c.doc)
}

// runColumns collects runs for one multi-row upsert.
type runColumns struct {
	namespace, workflow, state []string
	number                     []int32
	rv                         []int64
	doc                        []string
}

func (c *runColumns) add(r *state.WorkflowRun) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return state.Errorf(state.EINTERNAL, "%s: encode: %v", r.Key(), err)
	}
	c.namespace, c.workflow, c.number = append(c.namespace, r.Namespace), append(c.workflow, r.Workflow), append(c.number, int32(r.Number))
	c.rv, c.state, c.doc = append(c.rv, int64(r.ResourceVersion)), append(c.state, string(r.State)), append(c.doc, string(doc))
	return nil
}

func (c *runColumns) queue(b *pgx.Batch) {
	if len(c.namespace) == 0 {
		return
	}
	b.Queue(`INSERT INTO runs (namespace, workflow, number, resource_version, state, doc)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::json[])
		ON CONFLICT (namespace, workflow, number) DO UPDATE SET resource_version = excluded.resource_version,
			state = excluded.state, doc = excluded.doc`,
		c.namespace, c.workflow, c.number, c.rv, c.state, c.doc)
}

// eventColumns collects events for one multi-row INSERT.
type eventColumns struct {
	seq                       []int64
	at                        []time.Time
	typ, kind, namespace, nam []string
	doc                       []string
}

func (e *eventColumns) add(ev *state.Event) error {
	doc, err := json.Marshal(ev)
	if err != nil {
		return state.Errorf(state.EINVALID, "event %d: encode: %v", ev.Seq, err)
	}
	e.seq = append(e.seq, int64(ev.Seq))
	e.at = append(e.at, ev.Time)
	e.typ = append(e.typ, string(ev.Type))
	e.kind = append(e.kind, ev.Kind)
	e.namespace = append(e.namespace, ev.Namespace)
	e.nam = append(e.nam, ev.Name)
	e.doc = append(e.doc, string(doc))
	return nil
}

func (e *eventColumns) queue(b *pgx.Batch) {
	if len(e.seq) == 0 {
		return
	}
	b.Queue(`INSERT INTO events (seq, time, type, kind, namespace, name, doc)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::json[])`,
		e.seq, e.at, e.typ, e.kind, e.namespace, e.nam, e.doc)
}
