package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tinkops/tinkops/state"
)

// listChunk is how many rows a list reads per round trip while it looks for
// a page's worth of matches.
const listChunk = 500

// GetObject implements state.Store.
func (s *Store) GetObject(ctx context.Context, key state.ObjectKey) (*state.Object, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	return getDoc[state.Object](ctx, s, key, "SELECT doc FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
		key.Kind, key.Namespace, key.Name)
}

// GetRun implements state.Store.
func (s *Store) GetRun(ctx context.Context, key state.RunKey) (*state.WorkflowRun, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	return getDoc[state.WorkflowRun](ctx, s, key, "SELECT doc FROM runs WHERE namespace = $1 AND workflow = $2 AND number = $3",
		key.Namespace, key.Workflow, key.Number)
}

// getDoc reads the one document sql selects: ENOTFOUND naming key if there
// is none.
func getDoc[T any](ctx context.Context, s *Store, key fmt.Stringer, sql string, args ...any) (*T, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	var doc []byte
	err = s.pool.QueryRow(ctx, sql, args...).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, state.Errorf(state.ENOTFOUND, "%s: not found", key)
	}
	if err != nil {
		return nil, s.wrap(err, "get %s", key)
	}
	var v T
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, state.Errorf(state.EINTERNAL, "%s: stored record does not decode: %v", key, err)
	}
	return &v, nil
}

// SyncStatus implements state.Store.
func (s *Store) SyncStatus(ctx context.Context) (*state.SyncStatus, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	st := &state.SyncStatus{}
	var doc []byte
	err = s.pool.QueryRow(ctx, "SELECT doc FROM sync_status WHERE id = 1").Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return nil, s.wrap(err, "read sync status")
	}
	if err := json.Unmarshal(doc, st); err != nil {
		return nil, state.Errorf(state.EINTERNAL, "stored sync status does not decode: %v", err)
	}
	return st, nil
}

// cursor is a position in a list: the key columns of the last row
// returned. Its token is opaque to clients but not secret.
type cursor struct {
	Table string   `json:"t"`
	Key   []string `json:"k"`
}

func (c cursor) token() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(token, table string, parts int) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Table != table || len(c.Key) != parts {
		return c, state.Errorf(state.EINVALID, "continue token %q does not belong to this query", token)
	}
	return c, nil
}

// ListObjects implements state.Store. Rows come in key order; labels are
// matched here (state.Selector is the one implementation of selectors), so
// the list reads chunks until it has a page, all in one snapshot so that a
// page never shows part of a batch.
func (s *Store) ListObjects(ctx context.Context, q state.ObjectQuery) (*state.ObjectPage, error) {
	var after []string
	if q.Continue != "" {
		c, err := parseCursor(q.Continue, "objects", 3)
		if err != nil {
			return nil, err
		}
		if (q.Kind != "" && c.Key[0] != q.Kind) || (q.Namespace != "" && c.Key[1] != q.Namespace) {
			return nil, state.Errorf(state.EINVALID, "continue token %q does not belong to this query", q.Continue)
		}
		after = c.Key
	}
	where := []string{"true"}
	args := []any{}
	if q.Kind != "" {
		args = append(args, q.Kind)
		where = append(where, "kind = $"+strconv.Itoa(len(args)))
	}
	if q.Namespace != "" {
		args = append(args, q.Namespace)
		where = append(where, "namespace = $"+strconv.Itoa(len(args)))
	}
	n := len(args)
	sql := "SELECT kind, namespace, name, doc FROM objects WHERE " + strings.Join(where, " AND ") +
		" AND (NOT $" + strconv.Itoa(n+1) + "::bool OR (kind, namespace, name) > ($" + strconv.Itoa(n+2) + " COLLATE \"C\", $" +
		strconv.Itoa(n+3) + " COLLATE \"C\", $" + strconv.Itoa(n+4) + " COLLATE \"C\"))" +
		" ORDER BY kind, namespace, name LIMIT $" + strconv.Itoa(n+5)
	objs, last, err := list(ctx, s, sql, args, after, 3, q.Limit, func(doc []byte) (*state.Object, bool, error) {
		var o state.Object
		if err := json.Unmarshal(doc, &o); err != nil {
			return nil, false, state.Errorf(state.EINTERNAL, "stored object does not decode: %v", err)
		}
		return &o, q.Selector.Matches(o.Labels), nil
	}, func(o *state.Object) []string { return []string{o.Kind, o.Namespace, o.Name} })
	if err != nil {
		return nil, s.wrap(err, "list objects")
	}
	page := &state.ObjectPage{Objects: objs}
	if last != nil {
		page.Continue = cursor{Table: "objects", Key: last}.token()
	}
	return page, nil
}

// ListRuns implements state.Store.
func (s *Store) ListRuns(ctx context.Context, q state.RunQuery) (*state.RunPage, error) {
	var after []string
	if q.Continue != "" {
		c, err := parseCursor(q.Continue, "runs", 3)
		if err != nil {
			return nil, err
		}
		_, numErr := strconv.Atoi(c.Key[2])
		if numErr != nil || (q.Workflow != "" && (c.Key[0] != q.Namespace || c.Key[1] != q.Workflow)) ||
			(q.Workflow == "" && q.Namespace != "" && c.Key[0] != q.Namespace) {
			return nil, state.Errorf(state.EINVALID, "continue token %q does not belong to this query", q.Continue)
		}
		after = c.Key
	}
	where := []string{"true"}
	args := []any{}
	if q.Workflow != "" {
		args = append(args, q.Namespace, q.Workflow)
		where = append(where, "namespace = $1 AND workflow = $2")
	} else if q.Namespace != "" {
		args = append(args, q.Namespace)
		where = append(where, "namespace = $1")
	}
	if len(q.States) > 0 {
		st := make([]string, len(q.States))
		for i, x := range q.States {
			st[i] = string(x)
		}
		args = append(args, st)
		where = append(where, "state = ANY($"+strconv.Itoa(len(args))+")")
	}
	n := len(args)
	sql := "SELECT namespace, workflow, number::text AS num, doc FROM runs WHERE " + strings.Join(where, " AND ") +
		" AND (NOT $" + strconv.Itoa(n+1) + "::bool OR (namespace, workflow, number) > ($" + strconv.Itoa(n+2) + " COLLATE \"C\", $" +
		strconv.Itoa(n+3) + " COLLATE \"C\", $" + strconv.Itoa(n+4) + "::text::int))" +
		" ORDER BY namespace, workflow, number LIMIT $" + strconv.Itoa(n+5)
	runs, last, err := list(ctx, s, sql, args, after, 3, q.Limit, func(doc []byte) (*state.WorkflowRun, bool, error) {
		var r state.WorkflowRun
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, false, state.Errorf(state.EINTERNAL, "stored run does not decode: %v", err)
		}
		return &r, true, nil
	}, func(r *state.WorkflowRun) []string { return []string{r.Namespace, r.Workflow, strconv.Itoa(r.Number)} })
	if err != nil {
		return nil, s.wrap(err, "list runs")
	}
	page := &state.RunPage{Runs: runs}
	if last != nil {
		page.Continue = cursor{Table: "runs", Key: last}.token()
	}
	return page, nil
}

// list reads rows of sql (whose last five parameters are: has-cursor, the
// three cursor columns, and a row limit) in chunks within one read-only
// snapshot, keeps those decode selects, and stops after limit matches once
// it knows whether there is another. It returns the matches and, when more
// follow, the key of the last one.
func list[T any](ctx context.Context, s *Store, sql string, args []any, after []string, parts, limit int,
	decode func([]byte) (T, bool, error), keyOf func(T) []string) ([]T, []string, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer leave()
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(context.Background())
	chunk := listChunk
	if limit > 0 && limit+1 < chunk {
		chunk = limit + 1
	}
	var out []T
	pos := after
	for {
		cur := make([]any, 0, len(args)+5)
		cur = append(cur, args...)
		if pos == nil {
			cur = append(cur, false, "", "", "0")
		} else {
			cur = append(cur, true, pos[0], pos[1], pos[2])
		}
		cur = append(cur, chunk)
		rows, err := tx.Query(ctx, sql, cur...)
		if err != nil {
			return nil, nil, err
		}
		got := 0
		for rows.Next() {
			got++
			var k [3]string
			var doc []byte
			if err := rows.Scan(&k[0], &k[1], &k[2], &doc); err != nil {
				rows.Close()
				return nil, nil, err
			}
			pos = k[:]
			x, ok, err := decode(doc)
			if err != nil {
				rows.Close()
				return nil, nil, err
			}
			if !ok {
				continue
			}
			if limit > 0 && len(out) == limit {
				rows.Close()
				return out, keyOf(out[len(out)-1]), nil
			}
			out = append(out, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		if got < chunk {
			return out, nil, nil
		}
	}
}
