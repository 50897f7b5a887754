package badger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/tinkops/tinkops/state"
)

// GetRun implements state.Store.
func (s *Store) GetRun(ctx context.Context, key state.RunKey) (*state.WorkflowRun, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	shared := state.ReadsShared(ctx)
	var run *state.WorkflowRun
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		var err error
		run, err = getDecoded[state.WorkflowRun](s, shared, txn, runKey(key), func() string { return key.String() + ": stored run" })
		return err
	})
	if err != nil {
		return nil, wrapInternal(err, "get %s", key)
	}
	if run == nil {
		return nil, state.Errorf(state.ENOTFOUND, "%s: not found", key)
	}
	return run, nil
}

// GetRuns implements state.RunsGetter: one snapshot for all the keys.
func (s *Store) GetRuns(ctx context.Context, keys []state.RunKey) ([]*state.WorkflowRun, error) {
	for _, key := range keys {
		if err := key.Validate(); err != nil {
			return nil, err
		}
	}
	shared := state.ReadsShared(ctx)
	out := make([]*state.WorkflowRun, len(keys))
	err := s.view(ctx, func(txn *badgerdb.Txn) error {
		for i, key := range keys {
			var err error
			if out[i], err = getDecoded[state.WorkflowRun](s, shared, txn, runKey(key), func() string { return key.String() + ": stored run" }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapInternal(err, "get %d runs", len(keys))
	}
	return out, nil
}

// readRun returns the run at bk, or nil if there is none.
func readRun(txn *badgerdb.Txn, bk []byte, key state.RunKey) (*state.WorkflowRun, error) {
	v, ok, err := get(txn, bk)
	if err != nil || !ok {
		return nil, err
	}
	var run state.WorkflowRun
	if v, err = unpack(v); err == nil {
		err = json.Unmarshal(v, &run)
	}
	if err != nil {
		return nil, state.Errorf(state.EINTERNAL, "%s: stored run does not decode: %v", key, err)
	}
	return &run, nil
}

// ListRuns implements state.Store. Runs of one workflow share a key prefix
// and sort by run number, so "the runs of wf-7" is a prefix scan.
func (s *Store) ListRuns(ctx context.Context, q state.RunQuery) (*state.RunPage, error) {
	prefix := runPrefix(q.Namespace, q.Workflow, q.Workflow != "")
	shared := state.ReadsShared(ctx)
	var buf []byte // reused by otherState
	runs, cont, err := scan(ctx, s, prefix, q.Continue, q.Limit, len(q.States) > 0, func(item *badgerdb.Item) (*state.WorkflowRun, bool, error) {
		if len(q.States) > 0 {
			other := false
			if err := item.Value(func(v []byte) error {
				other, buf = otherState(buf, v, q.States)
				return nil
			}); err != nil {
				return nil, false, err
			}
			if other {
				return nil, false, nil
			}
		}
		run, err := decodeItem[state.WorkflowRun](s, shared, item, func() string { return fmt.Sprintf("stored run %q", item.Key()) })
		if err != nil {
			return nil, false, err
		}
		return run, len(q.States) == 0 || slices.Contains(q.States, run.State), nil
	})
	if err != nil {
		return nil, wrapInternal(err, "list runs")
	}
	return &state.RunPage{Runs: runs, Continue: cont}, nil
}

// otherState reports whether the stored run record v is in none of
// states, reading only its own state: the engine asks for the waiting runs
// among a fleet's every 30 s, and decoding 10,000 runs to find none was
// 45 MB allocated each time (450 MB at 100,000 machines), enough to keep a
// quiet server from ever looking idle. buf is reused to unpack v; the
// buffer to reuse next is returned. A record it cannot read so is not
// "other": the caller decodes it, and reports what is wrong with it.
func otherState(buf, v []byte, states []state.RunState) (other bool, next []byte) {
	u, err := unpackTo(buf, v)
	if err != nil {
		return false, buf
	}
	if packed(v) {
		buf = u
	}
	// The run's own state is its record's first "state": appendRun (as
	// json.Marshal) writes it after only the namespace, the workflow and
	// the number, before the actions and their states.
	st, ok := firstString(u, `"state":"`)
	return ok && !oneOf(st, states), buf
}

// PutRun implements state.Store.
func (s *Store) PutRun(ctx context.Context, actor state.Actor, run *state.WorkflowRun) (*state.WorkflowRun, error) {
	return state.PutRun(ctx, s, actor, run)
}
