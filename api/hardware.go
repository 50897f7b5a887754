package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
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
	k.decorate = func(ctx context.Context, out []client.Object, objs []*state.Object, _ bool) error {
		return s.decorateHardware(ctx, out, objs)
	}
	k.beforeDelete = func(ctx context.Context, obj *state.Object) error {
		return s.refuseIfUsed(ctx, obj, "hardwareRef")
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

// decorateHardware sets status.workflow: for each machine, the run that
// has it now (one running on it, or running a task on it for a workflow of
// another machine, or else one waiting for it), else the run created last.
func (s *Server) decorateHardware(ctx context.Context, out []client.Object, objs []*state.Object) error {
	want := make(map[state.ObjectKey]int, len(objs))
	byMAC := map[string]int{}
	for i, o := range objs {
		want[o.Key()] = i
		for _, iface := range interfaces(o) {
			if iface.DHCP != nil && iface.DHCP.MAC != "" {
				byMAC[iface.DHCP.MAC] = i
			}
		}
	}
	wfs, err := s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return err
	}
	best := make(map[int]*state.WorkflowRun)
	own := make(map[int][]*state.WorkflowRun) // runs of the machine's own workflows
	for _, wf := range wfs {
		var spec struct {
			HardwareRef string            `json:"hardwareRef"`
			HardwareMap map[string]string `json:"hardwareMap"`
		}
		_ = json.Unmarshal(wf.Spec, &spec)
		i, ok := want[state.ObjectKey{Kind: state.KindHardware, Namespace: wf.Namespace, Name: spec.HardwareRef}]
		// Machines whose MAC the workflow's hardwareMap names: its run
		// may hold them too.
		var others []int
		for _, mac := range spec.HardwareMap {
			if j, found := byMAC[mac]; found && (!ok || j != i) {
				others = append(others, j)
			}
		}
		n := reconciler.LastRun(wf)
		if n == 0 || !ok && len(others) == 0 {
			continue
		}
		run, err := s.store.GetRun(ctx, state.RunKey{Namespace: wf.Namespace, Workflow: wf.Name, Number: n})
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
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
		out[i].Status.Workflow = &client.HardwareWorkflow{Name: run.Workflow, Run: run.Number, State: string(run.State)}
	}
	for i, runs := range own {
		if p := reconciler.NetbootRun(runs); p != nil {
			out[i].Status.AllowPXE = p.AllowPXE
		}
	}
	if s.bmc != nil {
		for i, o := range objs {
			if p, ok := s.bmc.PowerStatus(o.Key()); ok {
				out[i].Status.Power = p
			}
		}
	}
	return nil
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
