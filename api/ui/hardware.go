package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Hardware list pages: a page of the API's list, or for a search the
// first matches found scanning the fleet in large pages.
const (
	hardwarePage   = 50
	searchScanPage = 1000
	searchMax      = 200
)

// hwRow is one machine in the list.
type hwRow struct {
	Name, Namespace string
	Labels          []string
	MAC, IP         string
	Power           string
	AllowPXE        string
	Workflow        string
	Run             *client.Run
}

type hwListData struct {
	Q, Label string
	// Since is where the live stream starts: the last event before the
	// page's reads.
	Since uint64
	Rows  []hwRow
	// Next is the API's continue token of the next page.
	Next string
	// More is set when a search found more than it shows.
	More  bool
	Error string
}

func (u *UI) hardwareList(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := hwListData{Q: strings.TrimSpace(q.Get("q")), Label: strings.TrimSpace(q.Get("label"))}
	var err error
	if d.Since, err = u.latestSeq(r, s); err != nil {
		u.fail(w, r, err)
		return
	}
	lq := url.Values{}
	if d.Label != "" {
		lq.Set("labelSelector", d.Label)
	}
	var objs []client.Object
	if d.Q == "" {
		lq.Set("limit", strconv.Itoa(hardwarePage))
		if c := q.Get("continue"); c != "" {
			lq.Set("continue", c)
		}
		var list client.List
		if err := u.get(r, s, "/v1/hardware", lq, &list); err != nil {
			if !badQuery(err, &d.Error) {
				u.fail(w, r, err)
				return
			}
		}
		objs, d.Next = list.Items, list.Metadata.Continue
	} else {
		lq.Set("limit", strconv.Itoa(searchScanPage))
		needle := strings.ToLower(d.Q)
		for {
			var list client.List
			if err := u.get(r, s, "/v1/hardware", lq, &list); err != nil {
				if !badQuery(err, &d.Error) {
					u.fail(w, r, err)
					return
				}
				break
			}
			for _, o := range list.Items {
				if matches(o, needle) {
					if len(objs) == searchMax {
						d.More = true
						break
					}
					objs = append(objs, o)
				}
			}
			if d.More || list.Metadata.Continue == "" {
				break
			}
			lq.Set("continue", list.Metadata.Continue)
		}
	}
	d.Rows = make([]hwRow, 0, len(objs))
	for _, o := range objs {
		row, err := u.hwRow(r, s, o)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		d.Rows = append(d.Rows, row)
	}
	p := &page{Title: "Hardware", Nav: "hardware", Session: s, Data: d}
	if q.Get("fragment") != "" {
		u.fragment(w, r, "hardware", p)
		return
	}
	u.render(w, r, http.StatusOK, "hardware", p)
}

// badQuery turns the API's EINVALID (a malformed label selector) into a
// message on the page.
func badQuery(err error, msg *string) bool {
	if ae, ok := err.(*client.Error); ok && ae.Code == state.EINVALID {
		*msg = ae.Message
		return true
	}
	return false
}

// matches is the search: a case-insensitive substring of the name, a MAC,
// an IP address, a hostname or a label value.
func matches(o client.Object, needle string) bool {
	if strings.Contains(strings.ToLower(o.Metadata.Name), needle) {
		return true
	}
	for _, v := range o.Metadata.Labels {
		if strings.Contains(strings.ToLower(v), needle) {
			return true
		}
	}
	spec := hardwareSpec(o)
	for _, in := range spec.Interfaces {
		if in.DHCP == nil {
			continue
		}
		ip := ""
		if in.DHCP.IP != nil {
			ip = in.DHCP.IP.Address
		}
		for _, v := range []string{in.DHCP.MAC, ip, in.DHCP.Hostname} {
			if v != "" && strings.Contains(strings.ToLower(v), needle) {
				return true
			}
		}
	}
	return false
}

// hardwareSpec decodes a machine's spec (the API wrote it from a valid
// object; a part that does not decode is left empty).
func hardwareSpec(o client.Object) schema.HardwareSpec {
	var spec schema.HardwareSpec
	_ = json.Unmarshal(o.Spec, &spec)
	return spec
}

// hwRow lays out a machine, with the progress of the run on it.
func (u *UI) hwRow(r *http.Request, s *session, o client.Object) (hwRow, error) {
	row := hwRow{Name: o.Metadata.Name, Namespace: o.Metadata.Namespace, Labels: labelList(o.Metadata.Labels)}
	spec := hardwareSpec(o)
	pxe := ""
	for _, in := range spec.Interfaces {
		if in.DHCP != nil && row.MAC == "" {
			row.MAC = in.DHCP.MAC
			if in.DHCP.IP != nil {
				row.IP = in.DHCP.IP.Address
			}
		}
		if in.Netboot != nil && in.Netboot.AllowPXE != nil && pxe == "" {
			pxe = yesNo(*in.Netboot.AllowPXE)
		}
	}
	row.AllowPXE = pxe
	if st := o.Status; st != nil {
		if st.AllowPXE != nil {
			row.AllowPXE = yesNo(*st.AllowPXE)
		}
		if st.Power != nil {
			row.Power = st.Power.State
		}
		if wf := st.Workflow; wf != nil {
			row.Workflow = wf.Name
			var obj client.Object
			err := u.get(r, s, "/v1/workflows/"+url.PathEscape(wf.Name), nsQuery(o.Metadata.Namespace), &obj)
			switch {
			case err == nil && obj.Status != nil:
				row.Run = obj.Status.Run
			case err != nil && state.ErrorCode(err) != state.ENOTFOUND:
				return row, err
			}
		}
	}
	return row, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// hwPageData is one machine's page.
type hwPageData struct {
	Obj        client.Object
	Spec       schema.HardwareSpec
	Row        hwRow
	Workflows  []client.Object
	PowerLog   []state.Event
	Events     []state.Event
	Buttons    []button
	Done       string
	Namespace  string
	SpecLabels []string
}

func (u *UI) hardwarePage(w http.ResponseWriter, r *http.Request, s *session) {
	name, ns := r.PathValue("name"), r.URL.Query().Get("namespace")
	var obj client.Object
	if err := u.get(r, s, "/v1/hardware/"+url.PathEscape(name), nsQuery(ns), &obj); err != nil {
		u.fail(w, r, err)
		return
	}
	row, err := u.hwRow(r, s, obj)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d := hwPageData{Obj: obj, Spec: hardwareSpec(obj), Row: row, Done: doneSentence(r), Namespace: ns}
	// The machine's workflows, with their latest runs.
	wq := url.Values{"hardware": {name}}
	if ns != "" {
		wq.Set("namespace", ns)
	}
	var wfs client.List
	if err := u.get(r, s, "/v1/workflows", wq, &wfs); err != nil {
		u.fail(w, r, err)
		return
	}
	d.Workflows = wfs.Items
	filter := eventFilter{Kind: state.KindHardware, Namespace: ns, Name: name}
	if d.Events, err = u.recentEvents(r, s, filter, 50); err != nil {
		u.fail(w, r, err)
		return
	}
	filter.Types = []string{string(state.EventBMC)}
	if d.PowerLog, err = u.recentEvents(r, s, filter, 50); err != nil {
		u.fail(w, r, err)
		return
	}
	if d.Spec.BMC != nil || d.Spec.BMCRef != nil {
		// Without a BMC the API could only refuse them.
		d.Buttons = u.buttons(s, target{Name: name, Namespace: ns}, "power-on", "power-off", "power-cycle")
	}
	u.render(w, r, http.StatusOK, "machine", &page{Title: name, Nav: "hardware", Session: s, Data: d})
}
