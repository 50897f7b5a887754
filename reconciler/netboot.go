package reconciler

import (
	"context"
	"encoding/json"

	"github.com/tinkops/tinkops/state"
)

// LatestRuns reads the latest run of every workflow in wfs whose hardware
// on accepts, grouped by that hardware. Workflows that never ran are left
// out. The API's hardware status and the machine-facing boot service read
// a machine's runs through it, so both see the same runs.
func LatestRuns(ctx context.Context, store state.Store, wfs []*state.Object, on func(hardware state.ObjectKey) bool) (map[state.ObjectKey][]*state.WorkflowRun, error) {
	out := map[state.ObjectKey][]*state.WorkflowRun{}
	for _, wf := range wfs {
		var spec struct {
			HardwareRef string `json:"hardwareRef"`
		}
		_ = json.Unmarshal(wf.Spec, &spec) // a stored workflow was validated when written
		hw := state.ObjectKey{Kind: state.KindHardware, Namespace: wf.Namespace, Name: spec.HardwareRef}
		n := LastRun(wf)
		if n == 0 || !on(hw) {
			continue
		}
		run, err := store.GetRun(ctx, state.RunKey{Namespace: wf.Namespace, Workflow: wf.Name, Number: n})
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[hw] = append(out[hw], run)
	}
	return out, nil
}

// NetbootRun returns, among one machine's runs, the run whose netboot
// permission is in effect: the newest that set AllowPXE (a workflow with
// bootOptions.toggleAllowNetboot). nil means no run set one, and the
// declared interfaces[].netboot.allowPXE holds. This is the one rule for
// the runtime allowPXE: the API shows it in hardware status and the boot
// service gates the iPXE script with it.
func NetbootRun(runs []*state.WorkflowRun) *state.WorkflowRun {
	var p *state.WorkflowRun
	for _, r := range runs {
		if r.AllowPXE != nil && (p == nil || r.CreatedAt.After(p.CreatedAt)) {
			p = r
		}
	}
	return p
}
