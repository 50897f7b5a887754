package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tinkops/tinkops/state"
)

const defaultEventLimit = 1000

// counters reads the event bounds: the next sequence number and the oldest
// retained event.
func (s *Store) counters(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (next, oldest uint64, err error) {
	var n, o int64
	if err := q.QueryRow(ctx, "SELECT next_seq, oldest FROM counters WHERE id = 1").Scan(&n, &o); err != nil {
		return 0, 0, s.wrap(err, "read counters of %s", s.where)
	}
	return uint64(n), uint64(o), nil
}

// Events implements state.Store. Filters are evaluated by the database on
// the event's columns.
func (s *Store) Events(ctx context.Context, q state.EventQuery) ([]state.Event, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	limit := q.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, s.wrap(err, "read events from %s", s.where)
	}
	defer tx.Rollback(context.Background())
	from := q.From
	if !q.Descending {
		_, oldest, err := s.counters(ctx, tx)
		if err != nil {
			return nil, err
		}
		if from == 0 {
			from = oldest
		} else if from < oldest {
			return nil, compacted(from, oldest)
		}
	} else if from == 0 {
		from = 1<<63 - 1
	}
	args := []any{int64(min(from, 1<<63-1))}
	var where []string
	if q.Descending {
		where = append(where, "seq <= $1")
	} else {
		where = append(where, "seq >= $1")
	}
	f := q.Filter
	if f.Kind != "" {
		args = append(args, f.Kind)
		where = append(where, "kind = $"+strconv.Itoa(len(args)))
	}
	if f.Name != "" || f.Namespace != "" {
		args = append(args, f.Namespace)
		where = append(where, "namespace = $"+strconv.Itoa(len(args)))
	}
	if f.Name != "" {
		args = append(args, f.Name)
		where = append(where, "name = $"+strconv.Itoa(len(args)))
	}
	if len(f.Types) > 0 {
		types := make([]string, len(f.Types))
		for i, t := range f.Types {
			types[i] = string(t)
		}
		args = append(args, types)
		where = append(where, "type = ANY($"+strconv.Itoa(len(args))+")")
	}
	order := "ASC"
	if q.Descending {
		order = "DESC"
	}
	args = append(args, limit)
	out, err := readEvents(ctx, tx, "SELECT doc FROM events WHERE "+strings.Join(where, " AND ")+
		" ORDER BY seq "+order+" LIMIT $"+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, s.wrap(err, "read events from %s", s.where)
	}
	return out, nil
}

func readEvents(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]state.Event, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []state.Event
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var ev state.Event
		if err := json.Unmarshal(doc, &ev); err != nil {
			return nil, state.Errorf(state.EINTERNAL, "stored event does not decode: %v", err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func compacted(from, oldest uint64) error {
	return state.Errorf(state.ENOTFOUND,
		"events before %d were removed by retention (asked from %d); resume from %d", oldest, from, oldest)
}

// EventBounds implements state.Store.
func (s *Store) EventBounds(ctx context.Context) (state.EventBounds, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return state.EventBounds{}, err
	}
	defer leave()
	next, oldest, err := s.counters(ctx, s.pool)
	if err != nil {
		return state.EventBounds{}, err
	}
	return state.EventBounds{Oldest: min(oldest, next), Latest: next - 1}, nil
}

// readLog reads up to max events from seq on, for a watcher. The log has no
// holes, so the first event read must be seq itself; if it is not,
// retention removed it.
func (s *Store) readLog(ctx context.Context, seq uint64, max int, _ state.EventFilter) ([]state.Event, uint64, error) {
	evs, err := readEvents(ctx, s.pool, "SELECT doc FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2", int64(seq), max)
	if err != nil {
		return nil, seq, s.wrap(err, "read events from %s", s.where)
	}
	next := seq
	for i, ev := range evs {
		if ev.Seq != next {
			evs = evs[:i]
			break
		}
		next++
	}
	if len(evs) == 0 {
		_, oldest, err := s.counters(ctx, s.pool)
		if err != nil {
			return nil, seq, err
		}
		if seq < oldest {
			return nil, seq, compacted(seq, oldest)
		}
		return nil, seq, state.Errorf(state.EINTERNAL, "event log of %s has no event %d", s.where, seq)
	}
	return evs, next, nil
}

// CompactEvents implements state.Store. It moves the oldest-retained mark
// forward before deleting each chunk, so that a reader that finds an event
// missing always finds the mark past it and reports retention rather than a
// hole. Replicas may compact at once: each step only moves the mark forward.
func (s *Store) CompactEvents(ctx context.Context) (int, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return 0, err
	}
	defer leave()
	s.compactMu.Lock()
	defer s.compactMu.Unlock()

	next, oldest, err := s.counters(ctx, s.pool)
	if err != nil {
		return 0, err
	}
	latest := next - 1
	r := s.opts.Retention
	cut := oldest
	if r.MaxEvents > 0 && latest >= uint64(r.MaxEvents) {
		cut = max(cut, latest-uint64(r.MaxEvents)+1)
	}
	if r.MaxAge > 0 {
		threshold := s.opts.Now().Add(-r.MaxAge)
		var first *int64
		err := s.pool.QueryRow(ctx, "SELECT min(seq) FROM events WHERE seq >= $1 AND seq <= $2 AND time >= $3",
			int64(cut), int64(latest), threshold).Scan(&first)
		if err != nil {
			return 0, s.wrap(err, "compact events in %s", s.where)
		}
		if first == nil {
			cut = latest + 1
		} else {
			cut = max(cut, uint64(*first))
		}
	}
	if cut <= oldest {
		return 0, nil
	}
	const step = 10000
	removed := 0
	for lo := oldest; lo < cut; {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		hi := min(lo+step, cut)
		n, err := s.compactStep(ctx, hi)
		if err != nil {
			return removed, err
		}
		removed += n
		lo = hi
	}
	return removed, nil
}

// compactStep moves the mark to hi and deletes the events before it, in one
// transaction.
func (s *Store) compactStep(ctx context.Context, hi uint64) (int, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, s.wrap(err, "compact events in %s", s.where)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "UPDATE counters SET oldest = greatest(oldest, $1) WHERE id = 1", int64(hi)); err != nil {
		return 0, s.wrap(err, "compact events in %s", s.where)
	}
	tag, err := tx.Exec(ctx, "DELETE FROM events WHERE seq < $1", int64(hi))
	if err != nil {
		return 0, s.wrap(err, "compact events in %s", s.where)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, s.wrap(err, "compact events in %s", s.where)
	}
	return int(tag.RowsAffected()), nil
}

// Watch implements state.Store.
func (s *Store) Watch(ctx context.Context, from uint64, filter state.EventFilter) (state.Watcher, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	next, oldest, err := s.counters(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	if from == 0 {
		from = next
	} else if from < oldest {
		return nil, compacted(from, oldest)
	}
	return s.watches.Start(ctx, s.ctx, &s.bg, s.hub, from, filter, s.where, s.readLog)
}

// listen follows other writers (other replicas) through LISTEN on a
// connection of its own, reading new events into the ring on every
// notification and every PollInterval. It reconnects with backoff when the
// database goes away, catching up with whatever was written meanwhile.
func (s *Store) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("event listener lost the database; reconnecting", "database", s.where, "err", Redact(err.Error(), s.secret), "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+s.notify); err != nil {
		return err
	}
	for {
		if err := s.catchUp(ctx, conn); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !pgconnTimeout(wctx, err) {
			return err
		}
	}
}

// pgconnTimeout reports whether WaitForNotification ended only because its
// poll interval passed.
func pgconnTimeout(wctx context.Context, err error) bool {
	return wctx.Err() != nil
}

// catchUp reads the events the ring lacks from the table and publishes
// them. Events already removed by retention are skipped (Advance):
// watchers that wanted them learn it from the log.
func (s *Store) catchUp(ctx context.Context, conn *pgx.Conn) error {
	for {
		from := s.hub.Next()
		evs, err := readEvents(ctx, conn, "SELECT doc FROM events WHERE seq >= $1 ORDER BY seq LIMIT 1000", int64(from))
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if evs[0].Seq != from {
			s.hub.Advance(evs[0].Seq)
		}
		s.hub.Publish(evs)
		if len(evs) < 1000 {
			return nil
		}
	}
}
