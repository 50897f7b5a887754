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
	runs, cont, err := scan(ctx, s, prefix, q.Continue, q.Limit, func(item *badgerdb.Item) (*state.WorkflowRun, bool, error) {
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

// PutRun implements state.Store.
func (s *Store) PutRun(ctx context.Context, actor state.Actor, run *state.WorkflowRun) (*state.WorkflowRun, error) {
	return state.PutRun(ctx, s, actor, run)
}
