package api

import (
	"context"

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
	wfs, err := s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return err
	}
	runs, err := reconciler.LatestRuns(ctx, s.store, wfs, func(hw state.ObjectKey) bool { _, ok := want[hw]; return ok })
	if err != nil {
		return err
	}
	for hw, rs := range runs {
		i := want[hw]
		best := rs[0]
		for _, run := range rs[1:] {
			if newerRun(run, best) {
				best = run
			}
		}
		out[i].Status.Workflow = &client.HardwareWorkflow{Name: best.Workflow, Run: best.Number, State: string(best.State)}
		if p := reconciler.NetbootRun(rs); p != nil {
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

// newerRun prefers a run that has not ended, then the one created last.
func newerRun(a, b *state.WorkflowRun) bool {
	if a.State.Terminal() != b.State.Terminal() {
		return !a.State.Terminal()
	}
	return a.CreatedAt.After(b.CreatedAt)
}
