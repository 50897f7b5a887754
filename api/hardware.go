package api

import (
	"context"

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
	k.decorate = func(ctx context.Context, out []client.Object, objs []*state.Object, _ bool) error {
		return s.decorateHardware(ctx, out, objs)
	}
	k.beforeDelete = func(ctx context.Context, obj *state.Object) error {
		return s.refuseIfUsed(ctx, obj, "hardwareRef")
	}
	return k
}

// decorateHardware sets status.workflow: for each machine, its active run if
// it has one, else the run created last.
func (s *Server) decorateHardware(ctx context.Context, out []client.Object, objs []*state.Object) error {
	want := make(map[state.ObjectKey]int, len(objs))
	for i, o := range objs {
		want[o.Key()] = i
	}
	// The workflows naming the page's machines, with their latest run
	// numbers, come from the fleet index; their runs from the store.
	type candidate struct {
		i   int
		key state.RunKey
	}
	var cands []candidate
	err := s.index.view(ctx, s.store, func(ix *fleetIndex) {
		for hw, i := range want {
			for wk := range ix.machines[hw] {
				if n := ix.objects[wk].lastRun; n > 0 {
					cands = append(cands, candidate{i: i, key: state.RunKey{Namespace: wk.Namespace, Workflow: wk.Name, Number: n}})
				}
			}
		}
	})
	if err != nil {
		return err
	}
	best := make(map[int]*state.WorkflowRun)
	pxe := make(map[int]*state.WorkflowRun) // the newest run that set allowPXE
	for _, c := range cands {
		run, err := s.store.GetRun(ctx, c.key)
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
		}
		i := c.i
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
