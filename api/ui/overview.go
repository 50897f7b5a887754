package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// runStates orders the runs-by-state table as a run goes.
var runStates = []string{"NONE", "PENDING", "PREPARING", "RUNNING", "SUCCESS", "FAILED", "TIMEOUT", "CANCELLED"}

// overviewData is the overview page: /v1/status, laid out.
type overviewData struct {
	Status  client.Status
	Kinds   []kindCount
	Runs    []stateCount
	Replica []keyValue
	Buttons []button
	Done    string
}

type kindCount struct {
	Kind     string
	Git, API int
}

type stateCount struct {
	State string
	N     int
}

type keyValue struct{ Key, Value string }

func (u *UI) overview(w http.ResponseWriter, r *http.Request, s *session) {
	var raw json.RawMessage
	if err := u.get(r, s, "/v1/status", nil, &raw); err != nil {
		u.fail(w, r, err)
		return
	}
	d := overviewData{Done: doneSentence(r)}
	if err := json.Unmarshal(raw, &d.Status); err != nil {
		u.fail(w, r, fmt.Errorf("decode status: %w", err))
		return
	}
	d.Replica = replicaOf(raw)
	for k, bySource := range d.Status.Objects {
		d.Kinds = append(d.Kinds, kindCount{Kind: k, Git: bySource[string(state.SourceGit)], API: bySource[string(state.SourceAPI)]})
	}
	sort.Slice(d.Kinds, func(i, j int) bool { return d.Kinds[i].Kind < d.Kinds[j].Kind })
	seen := map[string]bool{}
	for _, st := range runStates {
		seen[st] = true
		d.Runs = append(d.Runs, stateCount{State: st, N: d.Status.Workflows[st]})
	}
	for st, n := range d.Status.Workflows {
		if !seen[st] {
			d.Runs = append(d.Runs, stateCount{State: st, N: n})
		}
	}
	d.Buttons = u.buttons(s, target{}, "sync", map[bool]string{false: "suspend", true: "resume"}[d.Status.Sync.Suspended])
	u.render(w, r, http.StatusOK, "overview", &page{Title: "Overview", Nav: "overview", Session: s, Data: d})
}

// replicaOf reads the replica block of /v1/status (which replica answered
// and which one leads) when the server runs several; its fields are shown
// as they come, so the page needs no change when the block grows.
func replicaOf(raw json.RawMessage) []keyValue {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil || len(doc["replica"]) == 0 || string(doc["replica"]) == "null" {
		return nil
	}
	var fields map[string]any
	if json.Unmarshal(doc["replica"], &fields) != nil {
		return []keyValue{{Key: "replica", Value: string(doc["replica"])}}
	}
	out := make([]keyValue, 0, len(fields))
	for k, v := range fields {
		out = append(out, keyValue{Key: k, Value: fmt.Sprint(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// reviewData is the review page: the plan of the last attempted revision
// against the store, as `tink diff` prints it.
type reviewData struct {
	Sync    client.SyncStatus
	Plan    *client.PlanResult
	Missing string
}

func (u *UI) reviewPage(w http.ResponseWriter, r *http.Request, s *session) {
	var st client.Status
	if err := u.get(r, s, "/v1/status", nil, &st); err != nil {
		u.fail(w, r, err)
		return
	}
	d := reviewData{Sync: st.Sync}
	if u.snapshot == nil {
		d.Missing = "this server has no Git source to review"
	} else if rev, files, err := u.snapshot(r); err != nil {
		u.log.Warn("dashboard review: read the repository", "err", err)
		d.Missing = "the repository cannot be read now (the server log has the details)"
	} else {
		archive, err := client.PackRepository(files)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		var plan client.PlanResult
		call := apiCall{method: http.MethodPost, path: "/v1/plan", query: url.Values{"revision": {rev}}, body: bytes.NewReader(archive), contentType: "application/gzip"}
		if err := u.do(r, s, call, &plan); err != nil {
			u.fail(w, r, err)
			return
		}
		d.Plan = &plan
	}
	u.render(w, r, http.StatusOK, "review", &page{Title: "Review", Nav: "review", Session: s, Data: d})
}
