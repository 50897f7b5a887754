package state

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
)

// pageSize is how many objects or runs AllObjects and AllRuns read at
// once: large enough that a fleet takes a few round trips, small enough
// that one page never holds a store's read transaction for long.
const pageSize = 5000

// AllObjects reads every object q selects, page by page (q.Limit is the
// page size; 0 means pageSize). Callers that need a whole kind (set-wide
// checks, indexes) read it with this; the fleet is bounded (tens of
// thousands of objects).
func AllObjects(ctx context.Context, st Store, q ObjectQuery) ([]*Object, error) {
	if q.Limit <= 0 {
		q.Limit = pageSize
	}
	var all []*Object
	for {
		page, err := st.ListObjects(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Objects...)
		if q.Continue = page.Continue; q.Continue == "" {
			return all, nil
		}
	}
}

// AllRuns reads every run q selects, page by page, as AllObjects does.
func AllRuns(ctx context.Context, st Store, q RunQuery) ([]*WorkflowRun, error) {
	if q.Limit <= 0 {
		q.Limit = pageSize
	}
	var all []*WorkflowRun
	for {
		page, err := st.ListRuns(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Runs...)
		if q.Continue = page.Continue; q.Continue == "" {
			return all, nil
		}
	}
}

// JSONEqual reports whether two JSON documents (specs as stored) are equal
// by value: the same object encoded by two writers may differ in key order
// or spacing.
func JSONEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
