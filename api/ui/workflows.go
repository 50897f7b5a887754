package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// workflowPageSize is the workflow list's page.
const workflowPageSize = 50

// wfRow is one workflow in the list.
type wfRow struct {
	Name, Namespace    string
	Hardware, Template string
	Source             string
	Run                *client.Run
}

type wfListData struct {
	Label string
	// Since is where the live stream starts: the last event before the
	// page's reads.
	Since uint64
	Rows  []wfRow
	Next  string
	Error string
}

func wfRowOf(o client.Object) wfRow {
	var spec struct {
		TemplateRef string `json:"templateRef"`
		HardwareRef string `json:"hardwareRef"`
	}
	_ = json.Unmarshal(o.Spec, &spec)
	row := wfRow{Name: o.Metadata.Name, Namespace: o.Metadata.Namespace, Hardware: spec.HardwareRef, Template: spec.TemplateRef}
	if o.Status != nil {
		row.Source, row.Run = o.Status.Source, o.Status.Run
	}
	return row
}

func (u *UI) workflowList(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := wfListData{Label: q.Get("label")}
	var err error
	if d.Since, err = u.latestSeq(r, s); err != nil {
		u.fail(w, r, err)
		return
	}
	lq := url.Values{"limit": {strconv.Itoa(workflowPageSize)}}
	if d.Label != "" {
		lq.Set("labelSelector", d.Label)
	}
	if c := q.Get("continue"); c != "" {
		lq.Set("continue", c)
	}
	var list client.List
	if err := u.get(r, s, "/v1/workflows", lq, &list); err != nil && !badQuery(err, &d.Error) {
		u.fail(w, r, err)
		return
	}
	d.Next = list.Metadata.Continue
	for _, o := range list.Items {
		d.Rows = append(d.Rows, wfRowOf(o))
	}
	p := &page{Title: "Workflows", Nav: "workflows", Session: s, Data: d}
	if q.Get("fragment") != "" {
		u.fragment(w, r, "workflows", p)
		return
	}
	u.render(w, r, http.StatusOK, "workflows", p)
}

// wfPageData is a workflow's page: its latest run's action timeline and
// the run's events (BMC steps among them).
type wfPageData struct {
	Row     wfRow
	Events  []state.Event
	Buttons []button
	Done    string
	// Stream is the query of the page's live event stream.
	Stream string
}

func (u *UI) workflowPage(w http.ResponseWriter, r *http.Request, s *session) {
	name, ns := r.PathValue("name"), r.URL.Query().Get("namespace")
	// The stream starts after the last event before the reads: what
	// happens between the page's reads and the script's connection is
	// not lost.
	latest, err := u.latestSeq(r, s)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	var obj client.Object
	if err := u.get(r, s, "/v1/workflows/"+url.PathEscape(name), nsQuery(ns), &obj); err != nil {
		u.fail(w, r, err)
		return
	}
	d := wfPageData{Row: wfRowOf(obj), Done: doneSentence(r)}
	if d.Events, err = u.recentEvents(r, s, eventFilter{Kind: state.KindWorkflow, Namespace: ns, Name: name}, 100); err != nil {
		u.fail(w, r, err)
		return
	}
	if run := d.Row.Run; run != nil {
		switch run.State {
		case string(state.RunFailed), string(state.RunTimeout), string(state.RunCancelled):
			d.Buttons = u.buttons(s, target{Name: name, Namespace: ns}, "retry", "retry-start")
		case string(state.RunSuccess):
		default:
			d.Buttons = u.buttons(s, target{Name: name, Namespace: ns}, "cancel")
		}
	}
	sq := url.Values{"kind": {state.KindWorkflow}, "name": {name}, "since": {strconv.FormatUint(latest, 10)}}
	if ns != "" {
		sq.Set("namespace", ns)
	}
	d.Stream = sq.Encode()
	p := &page{Title: name, Nav: "workflows", Session: s, Data: d}
	if r.URL.Query().Get("fragment") != "" {
		u.fragment(w, r, "workflow", p)
		return
	}
	u.render(w, r, http.StatusOK, "workflow", p)
}

// newestFirst returns the last n events, newest first.
func newestFirst(evs []state.Event, n int) []state.Event {
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	out := make([]state.Event, len(evs))
	for i, e := range evs {
		out[len(evs)-1-i] = e
	}
	return out
}
