package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

var _ state.Dumper = (*Store)(nil)

// Dump implements state.Dumper from one read snapshot.
func (s *Store) Dump(ctx context.Context, fn func(state.DumpItem) error) error {
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		h := &state.DumpHeader{NextSeq: 1, NextRV: 1, Oldest: 1}
		if v, ok, err := get(txn, []byte(keyCounters)); err != nil {
			return err
		} else if ok {
			c, ok := decodeCounters(v)
			if !ok {
				return damaged(s.dir, "counters record is malformed")
			}
			h.NextSeq, h.NextRV = c.NextSeq, c.NextRV
		}
		if v, ok, err := get(txn, []byte(keyOldest)); err != nil {
			return err
		} else if ok && len(v) == 8 {
			h.Oldest = binary.BigEndian.Uint64(v)
		}
		if v, ok, err := get(txn, []byte(keySync)); err != nil {
			return err
		} else if ok {
			h.Sync = &state.SyncStatus{}
			if err := json.Unmarshal(v, h.Sync); err != nil {
				return state.Errorf(state.EINTERNAL, "stored sync status does not decode: %v", err)
			}
		}
		if err := fn(state.DumpItem{Header: h}); err != nil {
			return err
		}
		for _, p := range []string{prefixObject, prefixRun, prefixEvent} {
			if err := dumpPrefix(ctx, txn, p, fn); err != nil {
				return err
			}
		}
		return nil
	})
	return wrapInternal(err, "dump %s", s.dir)
}

func dumpPrefix(ctx context.Context, txn *badgerdb.Txn, prefix string, fn func(state.DumpItem) error) error {
	it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var item state.DumpItem
		err := it.Item().Value(func(v []byte) error {
			v, err := unpack(v)
			if err != nil {
				return err
			}
			switch prefix {
			case prefixObject:
				item.Object = &state.Object{}
				return json.Unmarshal(v, item.Object)
			case prefixRun:
				item.Run = &state.WorkflowRun{}
				return json.Unmarshal(v, item.Run)
			default:
				item.Event = &state.Event{}
				return json.Unmarshal(v, item.Event)
			}
		})
		if err != nil {
			return state.Errorf(state.EINTERNAL, "record %q does not decode: %v", it.Item().Key(), err)
		}
		if err := fn(item); err != nil {
			return err
		}
	}
	return nil
}

// LoadDir writes a dump into the state directory dir, which must be new or
// hold an empty store, keeping every resource version and sequence number.
// It is how `tink-server migrate` moves a site to Badger; the server must
// not run on dir meanwhile (the directory lock makes sure of it).
func LoadDir(ctx context.Context, dir string, opts Options, dump state.DumpFunc) (err error) {
	s, err := Open(ctx, dir, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	empty := true
	err = s.view(ctx, func(txn *badgerdb.Txn) error {
		for _, p := range []string{prefixObject, prefixRun, prefixEvent, keyCounters} {
			it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte(p)})
			it.Rewind()
			if it.Valid() {
				empty = false
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return wrapInternal(err, "read %s", s.dir)
	}
	if !empty {
		return state.Errorf(state.ECONFLICT, "state directory %s is not empty; migrate into a new directory", s.dir)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var scratch []byte
	put := func(key []byte, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return state.Errorf(state.EINVALID, "encode %q: %v", key, err)
		}
		if !bytes.Equal(key, []byte(keySync)) {
			b = pack(&scratch, b) // stored as the writer stores them
		}
		return wb.Set(key, b)
	}
	var header *state.DumpHeader
	err = dump(ctx, func(item state.DumpItem) error {
		switch {
		case item.Header != nil:
			header = item.Header
			if header.Sync != nil {
				return put([]byte(keySync), header.Sync)
			}
			return nil
		case item.Object != nil:
			return put(objectKey(item.Object.Key()), item.Object)
		case item.Run != nil:
			return put(runKey(item.Run.Key()), item.Run)
		case item.Event != nil:
			return put(eventKey(item.Event.Seq), item.Event)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if header == nil {
		return state.Errorf(state.EINVALID, "the dump has no header")
	}
	if err := wb.Set([]byte(keyCounters), counters{NextSeq: header.NextSeq, NextRV: header.NextRV}.encode()); err != nil {
		return wrapInternal(err, "write %s", s.dir)
	}
	if err := wb.Set([]byte(keyOldest), binary.BigEndian.AppendUint64(nil, header.Oldest)); err != nil {
		return wrapInternal(err, "write %s", s.dir)
	}
	if err := wb.Flush(); err != nil {
		return wrapInternal(err, "write %s", s.dir)
	}
	return s.db.Sync()
}
