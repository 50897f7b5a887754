package ui

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// tailSize is how many recent events a page shows before live ones come.
const tailSize = 200

// eventFilter is the API's event filter, as the events page's form and
// query carry it.
type eventFilter struct {
	Kind, Namespace, Name string
	Types                 []string
}

func filterOf(q url.Values) eventFilter {
	return eventFilter{Kind: q.Get("kind"), Namespace: q.Get("namespace"), Name: q.Get("name"), Types: q["type"]}
}

// query is the filter as /v1/events takes it.
func (f eventFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"kind": f.Kind, "namespace": f.Namespace, "name": f.Name} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, t := range f.Types {
		if t != "" {
			q.Add("type", t)
		}
	}
	return q
}

// recentWindow bounds how far back a page looks for an object's events:
// the store filters by scanning the log, and a long log (a busy fleet
// writes tens of thousands of events an hour) would make a machine's page
// slow to show.
const recentWindow = 10_000

// recentEvents returns the last n events the filter selects among the last
// recentWindow events of the log, newest first.
func (u *UI) recentEvents(r *http.Request, s *session, f eventFilter, n int) ([]state.Event, error) {
	latest, err := u.latestSeq(r, s)
	if err != nil {
		return nil, err
	}
	q := f.query()
	q.Set("limit", "1000")
	if latest > recentWindow {
		q.Set("since", strconv.FormatUint(latest-recentWindow, 10))
	}
	var all []state.Event
	for {
		var list client.EventList
		if err := u.get(r, s, "/v1/events", q, &list); err != nil {
			return nil, err
		}
		all = append(all, list.Items...)
		if len(all) > n {
			all = all[len(all)-n:]
		}
		if len(list.Items) < 1000 {
			return newestFirst(all, n), nil
		}
		q.Set("since", strconv.FormatUint(list.Items[len(list.Items)-1].Seq, 10))
	}
}

// latestSeq is the sequence number of the newest event.
func (u *UI) latestSeq(r *http.Request, s *session) (uint64, error) {
	var list client.EventList
	if err := u.get(r, s, "/v1/events", url.Values{"limit": {"1"}}, &list); err != nil {
		return 0, err
	}
	return list.Latest, nil
}

type eventsData struct {
	Filter eventFilter
	Events []state.Event
	// Stream is the query of the live stream: the filter, and the
	// sequence number the page's list ends at.
	Stream string
	Types  []string
	Error  string
}

// eventsPage is the live tail: the latest events the filter selects, and
// new ones as they are written.
func (u *UI) eventsPage(w http.ResponseWriter, r *http.Request, s *session) {
	f := filterOf(r.URL.Query())
	d := eventsData{Filter: f, Types: []string{
		string(state.EventCreated), string(state.EventUpdated), string(state.EventDeleted), string(state.EventRunState),
		string(state.EventActionState), string(state.EventBMC), string(state.EventSync), string(state.EventError)}}
	latest, err := u.latestSeq(r, s)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	q := f.query()
	if latest > tailSize*5 {
		q.Set("since", strconv.FormatUint(latest-tailSize*5, 10))
	}
	q.Set("limit", strconv.Itoa(tailSize*5))
	var list client.EventList
	if err := u.get(r, s, "/v1/events", q, &list); err != nil && !badQuery(err, &d.Error) {
		u.fail(w, r, err)
		return
	}
	d.Events = newestFirst(list.Items, tailSize)
	sq := f.query()
	sq.Set("since", strconv.FormatUint(max(latest, list.Latest), 10))
	d.Stream = sq.Encode()
	u.render(w, r, http.StatusOK, "events", &page{Title: "Events", Nav: "events", Session: s, Data: d})
}

// eventStream relays /v1/events?follow=true for the page's script. A
// reconnecting EventSource sends the last id it saw, and the stream
// resumes after it.
func (u *UI) eventStream(w http.ResponseWriter, r *http.Request, s *session) {
	q := filterOf(r.URL.Query()).query()
	q.Set("follow", "true")
	since := r.URL.Query().Get("since")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		since = id
	}
	if since != "" {
		if _, err := strconv.ParseUint(since, 10, 64); err == nil {
			q.Set("since", since)
		}
	}
	u.stream(w, r, s, "/v1/events", q)
}
