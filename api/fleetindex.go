package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Keeping what /v1/status and the hardware list need in memory.
//
// /v1/status counts every object by kind and source, lists the overrides
// and counts workflows by the state of their latest run; a hardware list
// shows each machine's run. Decoding 20,000 objects and 10,000 runs for
// that took a second on a 10,000-machine fleet, for every `tink status`
// and every dashboard page. So the server keeps a small index of them (per
// object its source, its drift, a workflow's hardware and last run; per
// workflow the state of its newest run) and brings it up to date from the
// event log before each use, as the reconciler's mirror does (see
// reconciler/mirror.go for why that is sound: every write appends an event
// naming what it changed, in commit order and without gaps):
//
//   - It knows the sequence number up to which it reflects the store, and
//     reads the events after it. Each object an event names is read again
//     (GetObject); each workflow with a run-state event has its newest run
//     read again (GetRun). Reads give the state as it is now, never older
//     than the event, so replaying an event is harmless.
//   - A full listing starts it afresh: the first use, events removed by
//     retention before they were read, a hole in the log, or more events to
//     read than objects to list.
type fleetIndex struct {
	mu     sync.Mutex
	loaded bool
	seq    uint64
	// objects holds every object's entry.
	objects map[state.ObjectKey]*indexEntry
	// runs holds, per workflow key, its highest-numbered run (runs of an
	// earlier workflow of the same name included, as the run keys are).
	runs map[state.ObjectKey]indexRun
	// machines maps a hardware key to the workflows whose hardwareRef
	// names it.
	machines map[state.ObjectKey]*keySet
	// templates maps a template key to the workflows whose templateRef
	// names it.
	templates map[state.ObjectKey]*keySet
	// byMAC maps a MAC to the workflows whose hardwareMap names it: their
	// runs may hold that MAC's machine too (tasks on several machines).
	byMAC map[string]*keySet
	// hwByMAC and hwByIP map a MAC and an IP address to the hardware whose
	// interfaces have it: a hardware written through the API is checked
	// against those sharing one with it (see checkHardware), not against
	// the whole fleet.
	hwByMAC, hwByIP map[string]*keySet
	// reloads and fetched count full listings and records read again, for
	// tests.
	reloads, fetched int
}

// indexEntry is what the index keeps of one object.
type indexEntry struct {
	source state.Source
	// drift is set when an API override differs from Git.
	drift *client.Drift
	// hardware, template and lastRun are a workflow's hardwareRef and
	// templateRef and the number of its latest run (0: never ran).
	hardware, template state.ObjectKey
	lastRun            int
	// macs are a workflow's hardwareMap values.
	macs []string
	// addrs are a hardware's interfaces as the set-wide checks read them:
	// each DHCP's MAC and IP address, in their places, and nothing else (a
	// fleet's index is held for the server's life: schema's interfaces
	// took 320 bytes a machine where these take 48).
	addrs []ifaceAddr
}

// ifaceAddr is what the index keeps of an interface: whether it has a DHCP
// block and an IP address, and their MAC and address.
type ifaceAddr struct {
	mac, ip     string
	dhcp, hasIP bool
}

// hardwareOf is the hardware key names as the set-wide checks read it.
func (e *indexEntry) hardwareOf(key state.ObjectKey) *schema.Hardware {
	ifaces := make([]schema.Interface, len(e.addrs))
	for i, a := range e.addrs {
		if a.dhcp {
			ifaces[i].DHCP = &schema.DHCP{MAC: a.mac}
			if a.hasIP {
				ifaces[i].DHCP.IP = &schema.IP{Address: a.ip}
			}
		}
	}
	return &schema.Hardware{Metadata: schema.ObjectMeta{Name: key.Name, Namespace: key.Namespace}, Spec: schema.HardwareSpec{Interfaces: ifaces}}
}

// indexRun is a workflow's newest run.
type indexRun struct {
	number int
	state  state.RunState
}

// indexEventPage is how many events one read of the log asks for.
const indexEventPage = 2000

// view brings the index up to date and calls fn with it under its lock; fn
// must not keep its maps.
func (ix *fleetIndex) view(ctx context.Context, st state.Store, fn func(ix *fleetIndex)) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	// The index keeps what it derives, not what it reads: its reads of
	// the store are its own.
	if err := ix.catchUpLocked(state.OwnReads(ctx), st); err != nil {
		ix.loaded = false
		return err
	}
	fn(ix)
	return nil
}

func (ix *fleetIndex) catchUpLocked(ctx context.Context, st state.Store) error {
	bounds, err := st.EventBounds(ctx)
	if err != nil {
		return fmt.Errorf("read event bounds: %w", err)
	}
	if !ix.loaded || bounds.Latest < ix.seq || bounds.Latest-ix.seq > uint64(max(len(ix.objects), 10_000)) {
		return ix.reloadLocked(ctx, st, bounds.Latest)
	}
	dirty := map[state.ObjectKey]bool{}
	dirtyRuns := map[state.ObjectKey]int{}
	for ix.seq < bounds.Latest {
		evs, err := st.Events(ctx, state.EventQuery{From: ix.seq + 1, Limit: indexEventPage})
		if state.ErrorCode(err) == state.ENOTFOUND {
			return ix.reloadLocked(ctx, st, bounds.Latest) // removed by retention before we read them
		}
		if err != nil {
			return fmt.Errorf("read events after %d: %w", ix.seq, err)
		}
		if len(evs) == 0 {
			return ix.reloadLocked(ctx, st, bounds.Latest)
		}
		for _, ev := range evs {
			if ev.Seq != ix.seq+1 {
				// The log promises no holes; if it has one, do not guess.
				return ix.reloadLocked(ctx, st, bounds.Latest)
			}
			ix.seq = ev.Seq
			if ev.Kind == "" || ev.Name == "" {
				continue
			}
			key := state.ObjectKey{Kind: ev.Kind, Namespace: ev.Namespace, Name: ev.Name}
			switch {
			case ev.Run == 0:
				dirty[key] = true
			case ev.Type == state.EventRunState && ev.Kind == state.KindWorkflow:
				dirtyRuns[key] = max(dirtyRuns[key], ev.Run)
				if e := ix.objects[key]; e != nil && ev.Run > e.lastRun {
					dirty[key] = true // its status names a new run
				}
			}
		}
	}
	for key := range dirty {
		obj, err := st.GetObject(ctx, key)
		ix.fetched++
		switch {
		case state.ErrorCode(err) == state.ENOTFOUND, state.ErrorCode(err) == state.EINVALID:
			ix.removeLocked(key)
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			ix.setLocked(obj)
		}
	}
	for key, n := range dirtyRuns {
		if cur, ok := ix.runs[key]; ok && cur.number > n {
			continue
		}
		run, err := st.GetRun(ctx, state.RunKey{Namespace: key.Namespace, Workflow: key.Name, Number: n})
		ix.fetched++
		switch {
		case state.ErrorCode(err) == state.ENOTFOUND:
		case err != nil:
			return fmt.Errorf("read run %d of %s: %w", n, key, err)
		default:
			ix.runs[key] = indexRun{number: run.Number, state: run.State}
		}
	}
	return nil
}

// reloadLocked lists every object and run. latest was read before the
// listing: events after it are read (again) at the next catch-up.
func (ix *fleetIndex) reloadLocked(ctx context.Context, st state.Store, latest uint64) error {
	ix.reloads++
	ix.loaded, ix.seq = false, latest
	ix.objects = map[state.ObjectKey]*indexEntry{}
	ix.runs = map[state.ObjectKey]indexRun{}
	ix.machines = map[state.ObjectKey]*keySet{}
	ix.templates = map[state.ObjectKey]*keySet{}
	ix.byMAC = map[string]*keySet{}
	ix.hwByMAC = map[string]*keySet{}
	ix.hwByIP = map[string]*keySet{}
	q := state.ObjectQuery{Limit: maxListLimit}
	for {
		page, err := st.ListObjects(ctx, q)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			ix.setLocked(o)
		}
		if q.Continue = page.Continue; q.Continue == "" {
			break
		}
	}
	// Runs come in key order (namespace, workflow, number): the last run
	// of each workflow is its newest.
	rq := state.RunQuery{Limit: maxListLimit}
	for {
		page, err := st.ListRuns(ctx, rq)
		if err != nil {
			return err
		}
		for _, r := range page.Runs {
			ix.runs[state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}] = indexRun{number: r.Number, state: r.State}
		}
		if rq.Continue = page.Continue; rq.Continue == "" {
			break
		}
	}
	ix.loaded = true
	return nil
}

// setLocked records an object as it is now.
func (ix *fleetIndex) setLocked(o *state.Object) {
	key := o.Key()
	ix.removeLocked(key)
	e := &indexEntry{source: o.Source}
	if ov := o.Override; ov != nil {
		e.drift = &client.Drift{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
			By: string(ov.By), At: ov.At, Reason: ov.Reason, Fields: specDrift(ov.GitSpec, o.Spec)}
	}
	if o.Kind == state.KindWorkflow {
		tmpl, hw := workflowRefs(o)
		e.hardware = state.ObjectKey{Kind: state.KindHardware, Namespace: o.Namespace, Name: hw}
		e.template = state.ObjectKey{Kind: state.KindTemplate, Namespace: o.Namespace, Name: tmpl}
		e.lastRun = reconciler.LastRun(o)
		e.macs = hardwareMapMACs(o)
		addTo(ix.machines, e.hardware, key)
		addTo(ix.templates, e.template, key)
		for _, mac := range e.macs {
			addTo(ix.byMAC, mac, key)
		}
	}
	if o.Kind == state.KindHardware {
		e.addrs = addresses(o)
		for _, a := range e.addrs {
			if a.mac != "" {
				addTo(ix.hwByMAC, a.mac, key)
			}
			if a.ip != "" {
				addTo(ix.hwByIP, a.ip, key)
			}
		}
	}
	ix.objects[key] = e
}

// removeLocked forgets an object.
func (ix *fleetIndex) removeLocked(key state.ObjectKey) {
	e := ix.objects[key]
	if e == nil {
		return
	}
	removeFrom(ix.machines, e.hardware, key)
	removeFrom(ix.templates, e.template, key)
	for _, mac := range e.macs {
		removeFrom(ix.byMAC, mac, key)
	}
	for _, a := range e.addrs {
		if a.dhcp {
			removeFrom(ix.hwByMAC, a.mac, key)
			if a.hasIP {
				removeFrom(ix.hwByIP, a.ip, key)
			}
		}
	}
	delete(ix.objects, key)
}

// sharing returns the stored hardware that has a MAC or an IP address of
// hw's interfaces: the only hardware the set-wide checks of hw can find a
// clash with. They come in the store's listing order (namespace, then
// name), the order of a full listing, so that a clash names the same
// hardware as a check against the whole fleet would.
func (ix *fleetIndex) sharing(hw *schema.Hardware) []*schema.Hardware {
	keys := map[state.ObjectKey]struct{}{}
	for _, iface := range hw.Spec.Interfaces {
		if d := iface.DHCP; d != nil {
			for k := range ix.hwByMAC[d.MAC].all() {
				keys[k] = struct{}{}
			}
			if d.IP != nil {
				for k := range ix.hwByIP[d.IP.Address].all() {
					keys[k] = struct{}{}
				}
			}
		}
	}
	out := make([]*schema.Hardware, 0, len(keys))
	for k := range keys {
		out = append(out, ix.objects[k].hardwareOf(k))
	}
	sortHardware(out)
	return out
}

// hardwareMapMACs returns the values of a stored workflow's hardwareMap.
func hardwareMapMACs(o *state.Object) []string {
	var spec struct {
		HardwareMap map[string]string `json:"hardwareMap"`
	}
	_ = json.Unmarshal(o.Spec, &spec) // a stored workflow was validated when written
	out := make([]string, 0, len(spec.HardwareMap))
	for _, mac := range spec.HardwareMap {
		out = append(out, mac)
	}
	return out
}

// addresses reads a stored hardware's interfaces down to what the
// set-wide checks compare: each DHCP's MAC and IP address.
func addresses(o *state.Object) []ifaceAddr {
	var spec struct {
		Interfaces []struct {
			DHCP *struct {
				MAC string `json:"mac"`
				IP  *struct {
					Address string `json:"address"`
				} `json:"ip"`
			} `json:"dhcp"`
		} `json:"interfaces"`
	}
	_ = json.Unmarshal(o.Spec, &spec) // a stored hardware was validated when written
	out := make([]ifaceAddr, len(spec.Interfaces))
	for i, iface := range spec.Interfaces {
		if d := iface.DHCP; d != nil {
			out[i] = ifaceAddr{mac: d.MAC, dhcp: true}
			if d.IP != nil {
				out[i].ip, out[i].hasIP = d.IP.Address, true
			}
		}
	}
	return out
}
