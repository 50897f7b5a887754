package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/tinkops/tinkops/state"
)

var _ state.Dumper = (*Store)(nil)

// Dump implements state.Dumper from one REPEATABLE READ snapshot.
func (s *Store) Dump(ctx context.Context, fn func(state.DumpItem) error) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.wrap(err, "dump %s", s.where)
	}
	defer tx.Rollback(context.Background())
	h := &state.DumpHeader{}
	var next, rv, oldest int64
	if err := tx.QueryRow(ctx, "SELECT next_seq, next_rv, oldest FROM counters WHERE id = 1").Scan(&next, &rv, &oldest); err != nil {
		return s.wrap(err, "dump %s", s.where)
	}
	h.NextSeq, h.NextRV, h.Oldest = uint64(next), uint64(rv), uint64(oldest)
	var doc []byte
	switch err := tx.QueryRow(ctx, "SELECT doc FROM sync_status WHERE id = 1").Scan(&doc); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return s.wrap(err, "dump %s", s.where)
	default:
		h.Sync = &state.SyncStatus{}
		if err := json.Unmarshal(doc, h.Sync); err != nil {
			return state.Errorf(state.EINTERNAL, "stored sync status does not decode: %v", err)
		}
	}
	if err := fn(state.DumpItem{Header: h}); err != nil {
		return err
	}
	for _, q := range []struct {
		sql  string
		item func([]byte) (state.DumpItem, error)
	}{
		{"SELECT doc FROM objects ORDER BY kind, namespace, name", func(b []byte) (state.DumpItem, error) {
			it := state.DumpItem{Object: &state.Object{}}
			return it, json.Unmarshal(b, it.Object)
		}},
		{"SELECT doc FROM runs ORDER BY namespace, workflow, number", func(b []byte) (state.DumpItem, error) {
			it := state.DumpItem{Run: &state.WorkflowRun{}}
			return it, json.Unmarshal(b, it.Run)
		}},
		{"SELECT doc FROM events ORDER BY seq", func(b []byte) (state.DumpItem, error) {
			it := state.DumpItem{Event: &state.Event{}}
			return it, json.Unmarshal(b, it.Event)
		}},
	} {
		if err := dumpRows(ctx, tx, q.sql, q.item, fn); err != nil {
			return s.wrap(err, "dump %s", s.where)
		}
	}
	return nil
}

func dumpRows(ctx context.Context, tx pgx.Tx, sql string, item func([]byte) (state.DumpItem, error), fn func(state.DumpItem) error) error {
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		it, err := item(doc)
		if err != nil {
			return state.Errorf(state.EINTERNAL, "stored record does not decode: %v", err)
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return rows.Err()
}

// loadChunk is how many records one statement of Load writes.
const loadChunk = 1000

// Load writes a dump into the store, which must be empty (no object, run
// or event, counters at their start), keeping every resource version and
// sequence number; all of it in one transaction, so a failed load leaves
// the database as it was. It is how `tink-server migrate` moves a site to
// PostgreSQL; no server may use the schema meanwhile.
func (s *Store) Load(ctx context.Context, dump state.DumpFunc) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return s.wrap(err, "load into %s", s.where)
	}
	defer tx.Rollback(context.Background())
	var next, rv int64
	var used bool
	err = tx.QueryRow(ctx, `SELECT next_seq, next_rv, EXISTS (SELECT 1 FROM objects) OR EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM events)
		FROM counters WHERE id = 1 FOR UPDATE`).Scan(&next, &rv, &used)
	if err != nil {
		return s.wrap(err, "load into %s", s.where)
	}
	if used || next != 1 || rv != 1 {
		return state.Errorf(state.ECONFLICT, "database %s (schema %s) is not empty; migrate into an empty one", s.where, s.opts.Schema)
	}
	var header *state.DumpHeader
	var objs objectColumns
	var runs runColumns
	var evs eventColumns
	flush := func(force bool) error {
		n := len(objs.kind) + len(runs.namespace) + len(evs.seq)
		if n == 0 || (!force && n < loadChunk) {
			return nil
		}
		var b pgx.Batch
		objs.queue(&b)
		runs.queue(&b)
		evs.queue(&b)
		objs, runs, evs = objectColumns{}, runColumns{}, eventColumns{}
		return tx.SendBatch(ctx, &b).Close()
	}
	err = dump(ctx, func(item state.DumpItem) error {
		switch {
		case item.Header != nil:
			header = item.Header
			return nil
		case item.Object != nil:
			if err := objs.add(item.Object); err != nil {
				return err
			}
		case item.Run != nil:
			if err := runs.add(item.Run); err != nil {
				return err
			}
		case item.Event != nil:
			if err := evs.add(item.Event); err != nil {
				return err
			}
		}
		return flush(false)
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil {
		return s.wrap(err, "load into %s", s.where)
	}
	if header == nil {
		return state.Errorf(state.EINVALID, "the dump has no header")
	}
	if header.Sync != nil {
		doc, err := json.Marshal(header.Sync)
		if err != nil {
			return state.Errorf(state.EINVALID, "sync status: encode: %v", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO sync_status (id, doc) VALUES (1, $1::json)", string(doc)); err != nil {
			return s.wrap(err, "load into %s", s.where)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE counters SET next_seq = $1, next_rv = $2, oldest = $3 WHERE id = 1",
		int64(header.NextSeq), int64(header.NextRV), int64(header.Oldest)); err != nil {
		return s.wrap(err, "load into %s", s.where)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(err, "load into %s", s.where)
	}
	// Watchers of this store start from the loaded log.
	s.hub.Advance(header.NextSeq)
	return nil
}
