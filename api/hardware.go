package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tinkops/tinkops/api/client"
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
		if isNull(a) && isNull(b) || jsonEqual(a, b) {
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

// decorateHardware sets status.workflow: for each machine, its active run if
// it has one, else the run created last.
func (s *Server) decorateHardware(ctx context.Context, out []client.Object, objs []*state.Object) error {
	want := make(map[state.ObjectKey]int, len(objs))
	for i, o := range objs {
		want[o.Key()] = i
	}
	wfs, err := s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return err
	}
	best := make(map[int]*state.WorkflowRun)
	pxe := make(map[int]*state.WorkflowRun) // the newest run that set allowPXE
	for _, wf := range wfs {
		_, hw := workflowRefs(wf)
		i, ok := want[state.ObjectKey{Kind: state.KindHardware, Namespace: wf.Namespace, Name: hw}]
		n := lastRun(wf)
		if !ok || n == 0 {
			continue
		}
		run, err := s.store.GetRun(ctx, state.RunKey{Namespace: wf.Namespace, Workflow: wf.Name, Number: n})
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
		}
		if b := best[i]; b == nil || newerRun(run, b) {
			best[i] = run
		}
		if p := pxe[i]; run.AllowPXE != nil && (p == nil || run.CreatedAt.After(p.CreatedAt)) {
			pxe[i] = run
		}
	}
	for i, run := range best {
		out[i].Status.Workflow = &client.HardwareWorkflow{Name: run.Workflow, Run: run.Number, State: string(run.State)}
	}
	for i, run := range pxe {
		out[i].Status.AllowPXE = run.AllowPXE
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

// newerRun prefers a run that has not ended, then the one created last.
func newerRun(a, b *state.WorkflowRun) bool {
	if a.State.Terminal() != b.State.Terminal() {
		return !a.State.Terminal()
	}
	return a.CreatedAt.After(b.CreatedAt)
}
