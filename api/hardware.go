package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// hardwareKind serves /v1/hardware. A machine's status shows the workflow
// run that runs on it now, or ran last.
func (s *Server) hardwareKind() *kind {
	k := &kind{s: s, res: client.Hardware, kind: state.KindHardware}
	k.check = func(ctx context.Context, _ *state.Object, p *pushed) error {
		return s.checkHardware(ctx, p)
	}
	k.authorize = authorizeBMC
	k.decorate = func(ctx context.Context, objs []*state.Object, _ bool, kept []*listItem) ([]extras, error) {
		return s.decorateHardware(ctx, objs, kept)
	}
	k.beforeDelete = func(ctx context.Context, obj *state.Object) error {
		return s.refuseIfUsed(ctx, obj)
	}
	return k
}

// bmcFields are the spec fields that say where a machine's BMC credential
// is sent and how: the inline bmc block (address, port, protocol,
// credentialsRef, insecureTLS) and bmcRef to a Rufio Machine.
var bmcFields = []string{"bmc", "bmcRef"}

// authorizeBMC lets only an admin create a Hardware with a BMC, or change
// where its BMC is and which credential it uses: whoever sets these fields
// decides where the server sends a BMC password. The secrets directory's
// allowed-hosts files are the boundary that holds for every source (see
// reconciler/bmc.AllowedHostsFile); this rule keeps an operator from even
// pointing a bound secret at a BMC over TLS it does not verify.
func authorizeBMC(old *state.Object, p *pushed, who *Principal) error {
	if who.Role == RoleAdmin {
		return nil
	}
	var before, after map[string]json.RawMessage
	if old != nil {
		if err := json.Unmarshal(old.Spec, &before); err != nil {
			return fmt.Errorf("decode stored spec of %s: %w", old.Key(), err)
		}
	}
	if err := json.Unmarshal(p.obj.Spec, &after); err != nil {
		return fmt.Errorf("decode spec of %s: %w", p.obj.Key(), err)
	}
	for _, f := range bmcFields {
		a, b := before[f], after[f]
		if isNull(a) && isNull(b) || state.JSONEqual(a, b) {
			continue
		}
		what := "change spec." + f + " of"
		if old == nil {
			what = "create with spec." + f
		}
		return Errorf(EFORBIDDEN, "token %s has role %s; only an admin may %s hardware %s: "+
			"these fields say where the server sends a BMC credential (see SECURITY.md)", who.Name, who.Role, what, objectName(p.obj.Namespace, p.obj.Name))
	}
	return nil
}

// isNull reports whether a spec field is absent or null.
func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// decorateHardware shows status.workflow: for each machine, the run that
// has it now (one running on it, or running a task on it for a workflow of
// another machine, or else one waiting for it), else the run created last;
// and the netboot permission and power state.
func (s *Server) decorateHardware(ctx context.Context, objs []*state.Object, kept []*listItem) ([]extras, error) {
	out := make([]extras, len(objs))
	want := make(map[state.ObjectKey]int, len(objs))
	byMAC := map[string]int{}
	for i, o := range objs {
		want[o.Key()] = i
		if it := kept[i]; it != nil {
			out[i].derived.macs = it.derived.macs
		} else {
			out[i].derived.macs = (&schema.Hardware{Spec: schema.HardwareSpec{Interfaces: interfaces(o)}}).MACs()
		}
		for _, mac := range out[i].derived.macs {
			byMAC[mac] = i
		}
	}
	// The workflows that name the page's machines (by hardwareRef, or by
	// a MAC in their hardwareMap), with their latest run numbers, come
	// from the fleet index; their runs from the store. A page of a large
	// fleet reads its own machines' runs, not every workflow.
	type candidate struct {
		key    state.ObjectKey
		i      int
		ok     bool  // the workflow's hardwareRef is machine i
		others []int // other machines of the page its hardwareMap names
		n      int
	}
	var cands []candidate
	err := s.index.view(ctx, s.store, func(ix *fleetIndex) {
		seen := map[state.ObjectKey]bool{}
		add := func(wk state.ObjectKey) {
			e := ix.objects[wk]
			if seen[wk] || e == nil || e.lastRun == 0 {
				return
			}
			seen[wk] = true
			c := candidate{key: wk, n: e.lastRun}
			c.i, c.ok = want[e.hardware]
			for _, mac := range e.macs {
				if j, found := byMAC[mac]; found && (!c.ok || j != c.i) {
					c.others = append(c.others, j)
				}
			}
			if c.ok || len(c.others) > 0 {
				cands = append(cands, c)
			}
		}
		for hw := range want {
			for wk := range ix.machines[hw].all() {
				add(wk)
			}
		}
		for mac := range byMAC {
			for wk := range ix.byMAC[mac].all() {
				add(wk)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	best := make(map[int]*state.WorkflowRun)
	own := make(map[int][]*state.WorkflowRun) // runs of the machine's own workflows
	for _, c := range cands {
		i, ok, others, n := c.i, c.ok, c.others, c.n
		run, err := s.store.GetRun(ctx, state.RunKey{Namespace: c.key.Namespace, Workflow: c.key.Name, Number: n})
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok {
			if b := best[i]; b == nil || newerRun(run, b) {
				best[i] = run
			}
			own[i] = append(own[i], run)
		}
		for _, j := range others {
			o := objs[j]
			if !holding(run) || !slices.Contains(run.Machines, objectName(o.Namespace, o.Name)) {
				continue
			}
			if b := best[j]; b == nil || newerRun(run, b) {
				best[j] = run
			}
		}
	}
	for i, run := range best {
		out[i].workflow = &client.HardwareWorkflow{Name: run.Workflow, Run: run.Number, State: string(run.State)}
	}
	for i, runs := range own {
		if p := reconciler.NetbootRun(runs); p != nil {
			out[i].allowPXE = p.AllowPXE
		}
	}
	if s.bmc != nil {
		for i, o := range objs {
			if p, ok := s.bmc.PowerStatus(o.Key()); ok {
				out[i].power = p
			}
		}
	}
	for i := range out {
		out[i].stampHardware()
	}
	return out, nil
}

// holding reports whether a run has its machines now (PREPARING or
// RUNNING).
func holding(r *state.WorkflowRun) bool {
	return r.State == state.RunPreparing || r.State == state.RunRunning
}

// newerRun prefers the run that has the machine now, then one waiting for
// it, then the one created last.
func newerRun(a, b *state.WorkflowRun) bool {
	if holding(a) != holding(b) {
		return holding(a)
	}
	if a.State.Terminal() != b.State.Terminal() {
		return !a.State.Terminal()
	}
	return a.CreatedAt.After(b.CreatedAt)
}
