package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
)

// actionDef is one operator action: the API route it calls (whose role in
// the route table decides who sees the button), what it acts on, and the
// sentences of its confirmation and of its outcome.
type actionDef struct {
	label  string
	method string
	route  string
	// on is "workflow", "hardware" or "" (the server).
	on string
	// confirm is a format taking the object's name and the machine's.
	confirm string
	done    string
	danger  bool
}

// actions are the operator actions, by the name forms carry.
var actions = map[string]actionDef{
	"retry":       {label: "Retry", method: http.MethodPost, route: "/v1/workflows/:name/retry", on: "workflow", confirm: "Retry workflow %s on machine %s from the action that failed?", done: "Retry requested: a new attempt of the run starts."},
	"retry-start": {label: "Retry from start", method: http.MethodPost, route: "/v1/workflows/:name/retry", on: "workflow", confirm: "Run workflow %s on machine %s again from its first action?", done: "Retry from the first action requested."},
	"cancel":      {label: "Cancel", method: http.MethodPost, route: "/v1/workflows/:name/cancel", on: "workflow", confirm: "Cancel the run of workflow %s on machine %s?", done: "The run was cancelled.", danger: true},
	"power-on":    {label: "Power on", method: http.MethodPost, route: "/v1/hardware/:name/power", on: "hardware", confirm: "Power on machine %[1]s?", done: "Power on sent to the BMC."},
	"power-off":   {label: "Power off", method: http.MethodPost, route: "/v1/hardware/:name/power", on: "hardware", confirm: "Power off machine %[1]s? This is a hard power off: the OS is not shut down.", done: "Power off sent to the BMC.", danger: true},
	"power-cycle": {label: "Power cycle", method: http.MethodPost, route: "/v1/hardware/:name/power", on: "hardware", confirm: "Power-cycle machine %[1]s? It restarts at once.", done: "Power cycle sent to the BMC.", danger: true},
	"sync":        {label: "Sync now", method: http.MethodPost, route: "/v1/sync", confirm: "Sync from Git now?", done: "Sync finished."},
	"suspend":     {label: "Suspend", method: http.MethodPost, route: "/v1/suspend", confirm: "Suspend reconciliation? Commits are not applied until it is resumed.", done: "Reconciliation is suspended.", danger: true},
	"resume":      {label: "Resume", method: http.MethodPost, route: "/v1/resume", confirm: "Resume reconciliation? The last attempted revision is applied if it is valid.", done: "Reconciliation resumed."},
}

// target is the object an action acts on (zero for the server).
type target struct {
	Name, Namespace string
}

// button is an action offered on a page: a link to its confirmation.
type button struct {
	Do, Label, Name, Namespace string
	Danger                     bool
}

// buttons returns the buttons among names that the session's role may use.
func (u *UI) buttons(s *session, t target, names ...string) []button {
	var out []button
	for _, n := range names {
		a, ok := actions[n]
		if !ok || !u.can(s, a.method, a.route) {
			continue
		}
		out = append(out, button{Do: n, Label: a.label, Name: t.Name, Namespace: t.Namespace, Danger: a.danger})
	}
	return out
}

// doneSentence is the outcome of the action a page was redirected from
// (a fixed sentence: nothing of the URL is shown).
func doneSentence(r *http.Request) string {
	return actions[r.URL.Query().Get("done")].done
}

// confirmData is the confirmation page.
type confirmData struct {
	Do, Name, Namespace string
	Question            string
	Label               string
	Danger              bool
	Back                string
}

// lookup reads the action a request names, and the sentence that names
// its machine.
func (u *UI) lookup(r *http.Request, s *session, do, name, ns string) (actionDef, string, error) {
	a, ok := actions[do]
	if !ok {
		return a, "", &client.Error{StatusCode: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf("no such action %q", do)}
	}
	switch a.on {
	case "workflow":
		var wf client.Object
		if err := u.get(r, s, "/v1/workflows/"+url.PathEscape(name), nsQuery(ns), &wf); err != nil {
			return a, "", err
		}
		var spec struct {
			HardwareRef string `json:"hardwareRef"`
		}
		_ = json.Unmarshal(wf.Spec, &spec)
		return a, fmt.Sprintf(a.confirm, name, spec.HardwareRef), nil
	case "hardware":
		if err := u.get(r, s, "/v1/hardware/"+url.PathEscape(name), nsQuery(ns), nil); err != nil {
			return a, "", err
		}
		return a, fmt.Sprintf(a.confirm, name), nil
	}
	return a, a.confirm, nil
}

// confirmPage asks before an action, naming the machine it touches.
func (u *UI) confirmPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	do, name, ns := q.Get("do"), q.Get("name"), q.Get("namespace")
	a, question, err := u.lookup(r, s, do, name, ns)
	if err == nil && !u.can(s, a.method, a.route) {
		// No button led here; the API would refuse the call as well.
		err = &client.Error{StatusCode: http.StatusForbidden, Code: api.EFORBIDDEN,
			Message: fmt.Sprintf("%s has role %s, which may not %s", s.Who.Name, s.Who.Role, strings.ToLower(a.label))}
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d := confirmData{Do: do, Name: name, Namespace: ns, Question: question, Label: a.label, Danger: a.danger, Back: backTo(a, name, ns, "")}
	u.render(w, r, http.StatusOK, "confirm", &page{Title: a.label, Session: s, Data: d})
}

// runAction makes the action's API call with the session's token: the API
// checks the role (a viewer's forged form gets its 403) and the engine its
// rules.
func (u *UI) runAction(w http.ResponseWriter, r *http.Request, s *session) {
	do, name, ns := r.PostFormValue("do"), r.PostFormValue("name"), r.PostFormValue("namespace")
	a, ok := actions[do]
	if !ok || (a.on != "" && name == "") {
		u.fail(w, r, &client.Error{StatusCode: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf("no such action %q, or no object named", do)})
		return
	}
	c := apiCall{method: a.method, query: nsQuery(ns)}
	switch a.on {
	case "workflow":
		c.path = "/v1/workflows/" + url.PathEscape(name) + "/" + map[bool]string{true: "retry", false: do}[do == "retry-start"]
		if do == "retry-start" {
			c.query.Set("fromStart", "true")
		}
	case "hardware":
		body, _ := json.Marshal(client.PowerRequest{Action: do[len("power-"):]})
		c.path, c.body, c.contentType = "/v1/hardware/"+url.PathEscape(name)+"/power", bytes.NewReader(body), "application/json"
	default:
		c.path = a.route
	}
	if err := u.do(r, s, c, nil); err != nil {
		u.fail(w, r, err)
		return
	}
	http.Redirect(w, r, backTo(a, name, ns, do), http.StatusSeeOther)
}

// backTo is the page of the object an action is about.
func backTo(a actionDef, name, ns, done string) string {
	q := nsQuery(ns)
	if done != "" {
		q.Set("done", done)
	}
	p := "/ui/"
	switch a.on {
	case "workflow":
		p = "/ui/workflows/" + url.PathEscape(name)
	case "hardware":
		p = "/ui/hardware/" + url.PathEscape(name)
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// nsQuery is the namespace query of an API call (none for the empty one).
func nsQuery(ns string) url.Values {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	return q
}
