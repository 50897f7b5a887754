package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

// Event pages.
const (
	defaultEventLimit = 1000
	maxEventLimit     = 10000
	// streamBurst is how many waiting events a stream writes before it
	// flushes.
	streamBurst = 256
)

// handleEvents serves /v1/events: a page of the log, or with follow=true a
// server-sent event stream of it. since=N selects events after N (a client
// resumes with the last sequence number it saw); without since a page
// starts at the oldest retained event and a stream with the events written
// from now on. kind, namespace, name and type (repeatable) filter.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	filter := state.EventFilter{Kind: q.Get("kind"), Namespace: q.Get("namespace"), Name: q.Get("name")}
	for _, t := range q["type"] {
		filter.Types = append(filter.Types, state.EventType(t))
	}
	follow, err := queryBool(r, "follow")
	if err != nil {
		return err
	}
	if follow {
		return s.followEvents(w, r, filter)
	}
	return s.listEvents(w, r, filter)
}

// handleWorkflowEvents serves /v1/workflows/:name/events: the workflow's
// events (all retained ones, or those after since), and with follow=true a
// stream of them that ends when the workflow's latest run ends.
func (s *Server) handleWorkflowEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	key := state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.URL.Query().Get("namespace"), Name: c.params.ByName("name")}
	if _, err := s.store.GetObject(r.Context(), key); state.ErrorCode(err) == state.ENOTFOUND {
		return Errorf(state.ENOTFOUND, "workflow %s not found", objectName(key.Namespace, key.Name))
	} else if err != nil {
		return err
	}
	filter := state.EventFilter{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}
	for _, t := range r.URL.Query()["type"] {
		filter.Types = append(filter.Types, state.EventType(t))
	}
	follow, err := queryBool(r, "follow")
	if err != nil {
		return err
	}
	if follow {
		return s.followWorkflow(w, r, key, filter)
	}
	return s.listEvents(w, r, filter)
}

// startSeq returns the first sequence number a request asks for: since+1,
// or the oldest retained event for since=0. ok is false without since.
func startSeq(r *http.Request) (from uint64, ok bool, err error) {
	since, ok, err := queryUint(r, "since")
	if err != nil || !ok {
		return 0, ok, err
	}
	if since == 0 {
		return 0, true, nil
	}
	return since + 1, true, nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, filter state.EventFilter) error {
	from, _, err := startSeq(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r, defaultEventLimit, maxEventLimit)
	if err != nil {
		return err
	}
	ctx := r.Context()
	bounds, err := s.store.EventBounds(ctx)
	if err != nil {
		return err
	}
	evs, err := s.store.Events(ctx, state.EventQuery{From: from, Filter: filter, Limit: limit})
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []state.Event{}
	}
	return writeJSON(w, http.StatusOK, client.EventList{Items: evs, Latest: max(bounds.Latest, lastSeq(evs))})
}

func lastSeq(evs []state.Event) uint64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// streamFrom resolves where a stream starts: after since (clamped to the
// end of the log, so a since from the future means "from now"), or, without
// since, at def.
func streamFrom(r *http.Request, bounds state.EventBounds, def uint64) (uint64, error) {
	from, ok, err := startSeq(r)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return def, nil
	case from == 0:
		return max(bounds.Oldest, 1), nil
	}
	return min(from, bounds.Latest+1), nil
}

// streamContext bounds a stream by its request and by Server.Close. Once
// the server closes, streams are refused with EUNAVAILABLE, which clients
// take as "reconnect in a moment".
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	if s.streams.Err() != nil {
		return nil, nil, Errorf(EUNAVAILABLE, "the server is shutting down; reconnect in a moment")
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// followEvents streams the event log.
func (s *Server) followEvents(w http.ResponseWriter, r *http.Request, filter state.EventFilter) error {
	ctx, cancel, err := s.streamContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	bounds, err := s.store.EventBounds(ctx)
	if err != nil {
		return err
	}
	from, err := streamFrom(r, bounds, bounds.Latest+1)
	if err != nil {
		return err
	}
	wt, err := s.store.Watch(ctx, from, filter)
	if err != nil {
		return err
	}
	defer wt.Close()
	out := s.startStream(w, from)
	for {
		done, err := out.relay(ctx, wt, s.keepAlive, nil)
		if done || err != nil {
			return nil // the client left, the server closes, or the watch failed (sent)
		}
	}
}

// followWorkflow streams a workflow's events until its latest run ends.
func (s *Server) followWorkflow(w http.ResponseWriter, r *http.Request, key state.ObjectKey, filter state.EventFilter) error {
	ctx, cancel, err := s.streamContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	// Read the end of the log before the run: a run that is not terminal
	// now can only end with an event after this point, so terminal events
	// up to it (an earlier end, since undone by a retry) do not end the
	// stream.
	bounds, err := s.store.EventBounds(ctx)
	if err != nil {
		return err
	}
	from, err := streamFrom(r, bounds, max(bounds.Oldest, 1))
	if err != nil {
		return err
	}
	wt, err := s.store.Watch(ctx, from, filter)
	if err != nil {
		return err
	}
	defer wt.Close()
	wf, err := s.store.GetObject(ctx, key)
	if err != nil {
		return err
	}
	latest := reconciler.LastRun(wf)
	run, err := s.latestRun(ctx, wf)
	if err != nil {
		return err
	}
	out := s.startStream(w, from)
	if run != nil && run.State.Terminal() {
		// The run ended before the stream began: send what the log holds
		// and how the run ended.
		wt.Close()
		if err := out.history(ctx, s.store, from, filter); err != nil {
			out.fail(err)
			return nil
		}
		out.end(client.StreamEnd{Namespace: key.Namespace, Workflow: key.Name, Run: run.Number, State: string(run.State)})
		return nil
	}
	check := func(ev state.Event) bool {
		switch {
		case ev.Seq <= bounds.Latest:
			// History: an end or a deletion there (before a retry, or of an
			// earlier workflow of this name) is over.
			return false
		case ev.Type == state.EventDeleted:
			out.fail(Errorf(state.ENOTFOUND, "workflow %s was deleted", objectName(key.Namespace, key.Name)))
			return true
		case ev.Type != state.EventRunState || ev.Run < latest:
			return false
		}
		latest = ev.Run
		st := s.runStateAfter(ctx, key, ev)
		if !st.Terminal() {
			return false
		}
		// The write that ended the run may have logged action events after
		// this one (RunEvents puts the run's own first); they share its
		// resourceVersion and are in the log already.
		if err := out.trailing(ctx, s.store, ev, filter); err != nil {
			out.fail(err)
			return true
		}
		out.end(client.StreamEnd{Namespace: key.Namespace, Workflow: key.Name, Run: ev.Run, State: string(st)})
		return true
	}
	for {
		done, err := out.relay(ctx, wt, s.keepAlive, check)
		if done || err != nil {
			return nil
		}
	}
}

// runStateAfter returns the state a run-state event moved its run to. The
// store writes these events as "Workflow/name#N: OLD -> NEW[: reason]" (or
// "...#N: STATE" for a new run); if the message does not parse, the run's
// current state stands in.
func (s *Server) runStateAfter(ctx context.Context, key state.ObjectKey, ev state.Event) state.RunState {
	rk := state.RunKey{Namespace: key.Namespace, Workflow: key.Name, Number: ev.Run}
	if rest, ok := strings.CutPrefix(ev.Message, rk.String()+": "); ok {
		if i := strings.Index(rest, ": "); i >= 0 {
			rest = rest[:i]
		}
		if i := strings.LastIndex(rest, "-> "); i >= 0 {
			rest = rest[i+3:]
		}
		if st := state.RunState(strings.TrimSpace(rest)); st.Valid() {
			return st
		}
	}
	run, err := s.store.GetRun(ctx, rk)
	if err != nil {
		return ""
	}
	return run.State
}

// stream writes server-sent events.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// broken is set once a write failed: the client is gone.
	broken bool
}

// startStream sends the stream's headers and its open message: the stream
// delivers events from seq from on.
func (s *Server) startStream(w http.ResponseWriter, from uint64) *stream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)
	out := &stream{w: w, rc: http.NewResponseController(w)}
	out.send(client.StreamOpen, 0, map[string]uint64{"since": from - 1})
	out.flush()
	return out
}

// send writes one message; name "" is an event of the log.
func (o *stream) send(name string, id uint64, v any) {
	if o.broken {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		o.broken = true
		return
	}
	var buf []byte
	if id > 0 {
		buf = append(buf, "id: "...)
		buf = strconv.AppendUint(buf, id, 10)
		buf = append(buf, '\n')
	}
	if name != "" {
		buf = append(buf, "event: "...)
		buf = append(buf, name...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	if _, err := o.w.Write(buf); err != nil {
		o.broken = true
	}
}

func (o *stream) flush() {
	if !o.broken && o.rc.Flush() != nil {
		o.broken = true
	}
}

// end sends the last message of a workflow stream.
func (o *stream) end(e client.StreamEnd) {
	o.send(client.StreamEndEvent, 0, e)
	o.flush()
}

// fail tells the client why the stream stops early.
func (o *stream) fail(err error) {
	o.send(client.StreamError, 0, client.ErrorBody{Error: errorBody(err)})
	o.flush()
}

// relay forwards what the watcher delivers until the stream must end (done)
// or keep-alive time passes with nothing to send. check, if set, sees each
// event after it was sent and ends the stream by returning true.
func (o *stream) relay(ctx context.Context, wt state.Watcher, keepAlive time.Duration, check func(state.Event) bool) (done bool, err error) {
	timer := time.NewTimer(keepAlive)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-timer.C:
			if _, err := o.w.Write([]byte(": keep-alive\n\n")); err != nil {
				return true, err
			}
			o.flush()
			return o.broken, nil
		case ev, ok := <-wt.Events():
			for n := 0; ; n++ {
				if !ok {
					if err := wt.Err(); err != nil && ctx.Err() == nil {
						o.fail(err)
					}
					return true, nil
				}
				o.send("", ev.Seq, ev)
				if check != nil && check(ev) {
					return true, nil
				}
				if n == streamBurst {
					break
				}
				more := false
				select {
				case ev, ok = <-wt.Events():
					more = true
				default:
				}
				if !more {
					break
				}
			}
			o.flush()
			if o.broken {
				return true, nil
			}
			// Since Go 1.23 a timer's channel holds no stale tick after
			// Reset, so no draining is needed.
			timer.Reset(keepAlive)
		}
	}
}

// trailing sends the events that the write of ev logged after it.
func (o *stream) trailing(ctx context.Context, st state.Store, ev state.Event, filter state.EventFilter) error {
	evs, err := st.Events(ctx, state.EventQuery{From: ev.Seq + 1, Filter: filter, Limit: defaultEventLimit})
	if err != nil {
		return err
	}
	next := ev.Seq + 1
	for _, e := range evs {
		if e.Seq != next || e.ResourceVersion != ev.ResourceVersion || e.Run != ev.Run {
			break
		}
		o.send("", e.Seq, e)
		next++
	}
	return nil
}

// history sends the events of the log from seq from that filter selects,
// up to the newest.
func (o *stream) history(ctx context.Context, st state.Store, from uint64, filter state.EventFilter) error {
	for {
		evs, err := st.Events(ctx, state.EventQuery{From: from, Filter: filter, Limit: defaultEventLimit})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			o.send("", ev.Seq, ev)
		}
		o.flush()
		if len(evs) < defaultEventLimit || o.broken {
			return nil
		}
		from = evs[len(evs)-1].Seq + 1
	}
}
