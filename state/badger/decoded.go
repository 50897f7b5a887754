package badger

import (
	"encoding/json"
	"errors"
	"sync"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// Decodings kept for shared readers (state.SharedReads).
//
// The API serves the same pages again and again (a dashboard, `tink
// workflow list` in a loop), and decoding their objects and runs from
// JSON was most of the cost of a list. A reader that promised not to
// modify what it gets is handed the decoding a previous shared read made
// of the same stored bytes instead.
//
// An entry is the decoding of one key at one Badger version. Badger
// gives every commit a new version, higher than any before, to every key
// it writes (split batches too: their chunks are copied into place by
// commits of their own), so a version names the very bytes read: an entry
// is used only for them, and a write makes it unreachable at once. There
// is nothing to invalidate, and so nothing to forget.
//
// Two generations bound the memory: entries go into the current one; when
// it is full it becomes the old one and the one before is dropped. An
// entry found in the old generation moves to the current one, so what is
// read often stays. Only shared reads fill it: the reconciler's listings
// of the whole fleet do not.
type decodedCache struct {
	mu       sync.Mutex
	cur, old map[string]decoded
}

// decoded is one entry: v (a *state.Object or *state.WorkflowRun) decoded
// from the value of its key at version.
type decoded struct {
	version uint64
	v       any
}

// decodedGeneration is how many entries a generation holds: a page of the
// largest list (5,000) with its runs fits in one.
const decodedGeneration = 16384

// lookup returns the decoding of key at version, if kept.
func (c *decodedCache) lookup(key []byte, version uint64) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.cur[string(key)]; ok && d.version == version {
		return d.v, true
	}
	if d, ok := c.old[string(key)]; ok && d.version == version {
		delete(c.old, string(key))
		c.addLocked(string(key), d)
		return d.v, true
	}
	return nil, false
}

// keep records the decoding of key at version.
func (c *decodedCache) keep(key []byte, version uint64, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(string(key), decoded{version: version, v: v})
}

func (c *decodedCache) addLocked(key string, d decoded) {
	if c.cur == nil || len(c.cur) >= decodedGeneration {
		c.old, c.cur = c.cur, make(map[string]decoded, min(2*len(c.cur)+16, decodedGeneration))
	}
	c.cur[key] = d
}

// decodeItem decodes an item's value into a new T, or, for a shared
// reader, returns the decoding of the same version kept by an earlier
// shared read. what names the record in errors.
func decodeItem[T any](s *Store, shared bool, item *badgerdb.Item, what func() string) (*T, error) {
	if shared {
		if v, ok := s.decoded.lookup(item.Key(), item.Version()); ok {
			if x, ok := v.(*T); ok {
				return x, nil
			}
		}
	}
	x := new(T)
	err := item.Value(func(v []byte) error {
		v, err := unpack(v)
		if err == nil {
			err = json.Unmarshal(v, x)
		}
		if err != nil {
			return state.Errorf(state.EINTERNAL, "%s does not decode: %v", what(), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if shared {
		s.decoded.keep(item.Key(), item.Version(), x)
	}
	return x, nil
}

// getDecoded reads and decodes the record at bk, nil if there is none;
// what names it in errors.
func getDecoded[T any](s *Store, shared bool, txn *badgerdb.Txn, bk []byte, what func() string) (*T, error) {
	item, err := txn.Get(bk)
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeItem[T](s, shared, item, what)
}
