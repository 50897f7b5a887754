package badger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// GetObject implements state.Store.
func (s *Store) GetObject(ctx context.Context, key state.ObjectKey) (*state.Object, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	shared := state.ReadsShared(ctx)
	var obj *state.Object
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		var err error
		obj, err = getDecoded[state.Object](s, shared, txn, objectKey(key), func() string { return key.String() + ": stored object" })
		return err
	})
	if err != nil {
		return nil, wrapInternal(err, "get %s", key)
	}
	if obj == nil {
		return nil, state.Errorf(state.ENOTFOUND, "%s: not found", key)
	}
	return obj, nil
}

// readObject returns the object at bk, or nil if there is none.
func readObject(txn *badgerdb.Txn, bk []byte, key state.ObjectKey) (*state.Object, error) {
	v, ok, err := get(txn, bk)
	if err != nil || !ok {
		return nil, err
	}
	var obj state.Object
	if v, err = unpack(v); err == nil {
		err = json.Unmarshal(v, &obj)
	}
	if err != nil {
		return nil, state.Errorf(state.EINTERNAL, "%s: stored object does not decode: %v", key, err)
	}
	return &obj, nil
}

// ListObjects implements state.Store. Objects are stored in key order, so a
// kind (and namespace) is a prefix scan; labels are matched while scanning.
// The continue token is the last key returned, so a page resumes exactly
// after it even if objects were added or removed in between.
func (s *Store) ListObjects(ctx context.Context, q state.ObjectQuery) (*state.ObjectPage, error) {
	prefix := objectPrefix(q.Kind, q.Namespace)
	shared := state.ReadsShared(ctx)
	objs, cont, err := scan(ctx, s, prefix, q.Continue, q.Limit, false, func(item *badgerdb.Item) (*state.Object, bool, error) {
		obj, err := decodeItem[state.Object](s, shared, item, func() string { return fmt.Sprintf("stored object %q", item.Key()) })
		if err != nil {
			return nil, false, err
		}
		if q.Namespace != "" && obj.Namespace != q.Namespace {
			return nil, false, nil
		}
		return obj, q.Selector.Matches(obj.Labels), nil
	})
	if err != nil {
		return nil, wrapInternal(err, "list objects")
	}
	return &state.ObjectPage{Objects: objs, Continue: cont}, nil
}

// scan walks the keys under prefix after the continue token and decodes each
// item with fn, which reports whether it is selected. After limit selected
// items it looks ahead for one more and, if there is one, returns a token to
// resume after the last selected key. peek says fn skips most items after
// a look at their values, which are then not read ahead.
func scan[T any](ctx context.Context, s *Store, prefix []byte, token string, limit int, peek bool, fn func(item *badgerdb.Item) (T, bool, error)) ([]T, string, error) {
	start := prefix
	var after []byte
	if token != "" {
		var err error
		if after, err = decodeToken(token, prefix); err != nil {
			return nil, "", err
		}
		start = after
	}
	var out []T
	var cont string
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		// A shared reader finds most values decoded already (decoded.go):
		// reading them ahead would be wasted, as it is for a peek, which
		// reads each value once where it lies.
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: prefix, PrefetchValues: !state.ReadsShared(ctx) && !peek, PrefetchSize: 100})
		defer it.Close()
		var last []byte
		n := 0
		for it.Seek(start); it.Valid(); it.Next() {
			if n++; n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			item := it.Item()
			if after != nil && bytes.Equal(item.Key(), after) {
				continue
			}
			x, ok, err := fn(item)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if limit > 0 && len(out) == limit {
				cont = encodeToken(last)
				return nil
			}
			out = append(out, x)
			last = item.KeyCopy(last[:0])
		}
		return nil
	})
	return out, cont, err
}

// PutObject implements state.Store.
func (s *Store) PutObject(ctx context.Context, actor state.Actor, obj *state.Object) (*state.Object, error) {
	return state.PutObject(ctx, s, actor, obj)
}

// DeleteObject implements state.Store.
func (s *Store) DeleteObject(ctx context.Context, actor state.Actor, key state.ObjectKey, resourceVersion uint64) error {
	return state.DeleteObject(ctx, s, actor, key, resourceVersion)
}

// Apply implements state.Store: it hands the batch to the writer goroutine
// (see writer.go) and waits for the group commit that includes it.
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

// SyncStatus implements state.Store.
func (s *Store) SyncStatus(ctx context.Context) (*state.SyncStatus, error) {
	st := &state.SyncStatus{}
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		v, ok, err := get(txn, []byte(keySync))
		if err != nil || !ok {
			return err
		}
		if err := json.Unmarshal(v, st); err != nil {
			return state.Errorf(state.EINTERNAL, "stored sync status does not decode: %v", err)
		}
		return nil
	})
	if err != nil {
		return nil, wrapInternal(err, "read sync status")
	}
	return st, nil
}
