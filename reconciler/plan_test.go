package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

func load(t *testing.T, fsys fstest.MapFS) *schema.Set {
	t.Helper()
	set, err := schema.Load(fsys)
	require.NoError(t, err)
	return set
}

// stored returns the objects of a repository as the store would hold them
// after applying it, with the given latest run numbers for workflows.
func stored(t *testing.T, fsys fstest.MapFS, lastRun map[string]int) []*state.Object {
	t.Helper()
	set := load(t, fsys)
	var out []*state.Object
	add := func(o schema.Object) {
		so, err := reconciler.ToState(o, state.SourceGit, "r0")
		require.NoError(t, err)
		so.ResourceVersion = uint64(len(out) + 1)
		if n := lastRun[so.Name]; n > 0 {
			so.Status = []byte(fmt.Sprintf(`{"lastRun":%d}`, n))
		}
		out = append(out, so)
	}
	for _, o := range set.Hardware {
		add(o)
	}
	for _, o := range set.Templates {
		add(o)
	}
	for _, o := range set.Workflows {
		add(o)
	}
	return out
}

func withFile(fsys fstest.MapFS, name, content string) fstest.MapFS {
	c := clone(fsys)
	c[name] = &fstest.MapFile{Data: []byte(content)}
	return c
}

func without(fsys fstest.MapFS, names ...string) fstest.MapFS {
	c := clone(fsys)
	for _, n := range names {
		delete(c, n)
	}
	return c
}

func wf(name, hw string, mac int, extra string) string {
	return fmt.Sprintf(wfFmt, name, "provision", hw, mac, extra)
}

// TestPlanConsequences: each kind of change, and the sentence a reviewer
// reads for it.
func TestPlanConsequences(t *testing.T) {
	base := repo(2)
	pending := func(wf, hw string, n int) *state.WorkflowRun {
		return &state.WorkflowRun{Workflow: wf, Hardware: hw, Number: n, State: state.RunRunning}
	}
	noBoot := strings.Replace(wf("wf-node-01", "node-01", 1, ""), "  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}\n", "", 1)
	cases := []struct {
		name    string
		desired fstest.MapFS
		actual  []*state.Object
		runs    []*state.WorkflowRun
		numbers map[state.ObjectKey]int
		opts    reconciler.Options
		want    []string
		ops     map[reconciler.Op]int
		blocked string
	}{
		{
			name:    "new workflow without boot options",
			desired: withFile(base, "workflows/node-01.yaml", noBoot),
			actual:  stored(t, without(base, "workflows/node-01.yaml"), map[string]int{"wf-node-02": 1}),
			want:    []string{"workflow wf-node-01 will start: node-01 will run template provision (2 actions)"},
			ops:     map[reconciler.Op]int{reconciler.OpCreate: 1},
		},
		{
			name:    "new workflow booting an ISO",
			desired: withFile(base, "workflows/node-01.yaml", strings.Replace(noBoot, "\n  run:", "\n  run:", 1)+"  bootOptions: {bootMode: iso, isoURL: \"http://10.0.0.2/hook.iso\"}\n"),
			actual:  stored(t, without(base, "workflows/node-01.yaml"), map[string]int{"wf-node-02": 1}),
			want:    []string{"workflow wf-node-01 will start: node-01 will be given virtual media http://10.0.0.2/hook.iso, set to CD-ROM once, power-cycled, then run template provision (2 actions)"},
		},
		{
			name:    "disabled workflow",
			desired: withFile(base, "workflows/node-01.yaml", wf("wf-node-01", "node-01", 1, "  disabled: true\n")),
			actual:  stored(t, without(base, "workflows/node-01.yaml"), map[string]int{"wf-node-02": 1}),
			want:    []string{"workflow wf-node-01 is disabled: it will not run"},
		},
		{
			name:    "spec change after the last run ended",
			desired: withFile(base, "workflows/node-01.yaml", wf("wf-node-01", "node-01", 1, "  run: 2\n")),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    []string{"workflow wf-node-01 will run again (run 2): node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"},
			ops:     map[reconciler.Op]int{reconciler.OpUpdate: 1},
		},
		{
			name:    "spec change while running",
			desired: withFile(base, "workflows/node-01.yaml", wf("wf-node-01", "node-01", 1, "  run: 2\n")),
			actual:  stored(t, base, map[string]int{"wf-node-01": 3, "wf-node-02": 1}),
			runs:    []*state.WorkflowRun{pending("wf-node-01", "node-01", 3)},
			want:    []string{"workflow wf-node-01 will run again (run 4) once run 3, now RUNNING, ends: node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"},
		},
		{
			name:    "workflow declared again while runs of the earlier one remain",
			desired: base,
			actual:  stored(t, without(base, "workflows/node-01.yaml"), map[string]int{"wf-node-02": 1}),
			numbers: map[state.ObjectKey]int{{Kind: state.KindWorkflow, Name: "wf-node-01"}: 2},
			want:    []string{"workflow wf-node-01 will start (run 3, after the runs of an earlier workflow of that name): node-01 will be powered off, set to PXE once, powered on, then run template provision (2 actions); PXE is allowed for the run and turned off once it succeeds"},
			ops:     map[reconciler.Op]int{reconciler.OpCreate: 1},
		},
		{
			name:    "label change re-runs nothing",
			desired: withFile(base, "workflows/node-01.yaml", strings.Replace(wf("wf-node-01", "node-01", 1, ""), "  name: wf-node-01\n", "  name: wf-node-01\n  labels: {team: a}\n", 1)),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    nil,
			ops:     map[reconciler.Op]int{reconciler.OpUpdate: 1},
		},
		{
			name:    "template change",
			desired: withFile(base, "templates/provision.yaml", fmt.Sprintf(tmplFmt, "provision", 30)),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    []string{"template provision changed: 2 workflows use it; none will re-run"},
		},
		{
			name:    "hardware address change",
			desired: withFile(base, "hardware/node-02.yaml", fmt.Sprintf(hwFmt, "node-02", 2, "node-02", 2, 42)),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    []string{"hardware node-02: its network interfaces change (DHCP and netboot answers follow)"},
		},
		{
			name:    "hardware BMC change",
			desired: withFile(base, "hardware/node-02.yaml", fmt.Sprintf(hwFmt, "node-02", 77, "node-02", 2, 2)),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    []string{"hardware node-02: its BMC connection changes"},
		},
		{
			name:    "removed from Git, prune off",
			desired: without(base, "workflows/node-02.yaml"),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			want:    []string{"workflow wf-node-02 is no longer in Git; kept because prune is off"},
			ops:     map[reconciler.Op]int{reconciler.OpOrphaned: 1},
		},
		{
			name:    "removed from Git, pruned",
			desired: without(base, "workflows/node-02.yaml"),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			opts:    reconciler.Options{Prune: true},
			want:    []string{"workflow wf-node-02 will be removed (prune)"},
			ops:     map[reconciler.Op]int{reconciler.OpDelete: 1},
		},
		{
			name:    "hardware with an active run is not pruned",
			desired: without(base, "workflows/node-02.yaml", "hardware/node-02.yaml"),
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			runs:    []*state.WorkflowRun{pending("wf-other", "node-02", 1)},
			opts:    reconciler.Options{Prune: true},
			want:    []string{"hardware node-02 is no longer in Git but has an active run (wf-other#1 RUNNING); it is kept", "workflow wf-node-02 will be removed (prune)"},
			ops:     map[reconciler.Op]int{reconciler.OpDelete: 1, reconciler.OpOrphaned: 1},
		},
		{
			name:    "pruning most of the fleet is refused",
			desired: fstest.MapFS{"templates/provision.yaml": base["templates/provision.yaml"]},
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			opts:    reconciler.Options{Prune: true},
			blocked: "the plan deletes 4 of 5 Git-managed objects, more than 50%",
		},
		{
			name:    "forced prune of most of the fleet",
			desired: fstest.MapFS{"templates/provision.yaml": base["templates/provision.yaml"]},
			actual:  stored(t, base, map[string]int{"wf-node-01": 1, "wf-node-02": 1}),
			opts:    reconciler.Options{Prune: true, ForcePrune: true},
			ops:     map[reconciler.Op]int{reconciler.OpDelete: 4},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := reconciler.MakePlan(load(t, c.desired), "r1", reconciler.Actual{Objects: c.actual, Runs: c.runs, RunNumbers: c.numbers}, c.opts)
			require.NoError(t, err)
			if c.blocked != "" {
				require.Contains(t, p.Blocked, c.blocked)
				return
			}
			require.Empty(t, p.Blocked)
			if c.want != nil || c.ops == nil {
				require.Equal(t, c.want, p.Consequences())
			}
			for op, n := range c.ops {
				require.Equal(t, n, p.Count(op), "count of %s", op)
			}
		})
	}
}

// TestPlanFields: an update lists the fields that change, old and new.
func TestPlanFields(t *testing.T) {
	base := repo(1)
	desired := withFile(base, "hardware/node-01.yaml", fmt.Sprintf(hwFmt, "node-01", 1, "node-01", 1, 42))
	p, err := reconciler.MakePlan(load(t, desired), "r1", reconciler.Actual{Objects: stored(t, base, map[string]int{"wf-node-01": 1})}, reconciler.Options{})
	require.NoError(t, err)
	require.Len(t, p.Changes, 1)
	c := p.Changes[0]
	require.Equal(t, reconciler.OpUpdate, c.Op)
	require.Equal(t, []reconciler.FieldChange{{Path: "spec.interfaces[0].dhcp.ip.address", Old: `"10.0.1.1"`, New: `"10.0.1.42"`}}, c.Fields)
	text := p.FormatText()
	require.Contains(t, text, "update Hardware/node-01 (hardware/node-01.yaml)\n  ~ spec.interfaces[0].dhcp.ip.address: \"10.0.1.1\" -> \"10.0.1.42\"")
}

// TestPlanIsPure: planning twice gives the same plan and writes nothing.
func TestPlanIsPure(t *testing.T) {
	st := MustOpenStore(t)
	r := reconciler.New(reconciler.Config{Store: st})
	snap := reconciler.Snapshot{Revision: "r1", FS: repo(3)}
	p1, errs, err := r.PlanSnapshot(context.Background(), snap)
	require.NoError(t, err)
	require.Empty(t, errs)
	p2, _, err := r.PlanSnapshot(context.Background(), snap)
	require.NoError(t, err)
	require.Equal(t, p1.FormatText(), p2.FormatText())
	b, err := st.EventBounds(context.Background())
	require.NoError(t, err)
	require.Zero(t, b.Latest, "planning writes no event")
}

func TestPlanMarkdown(t *testing.T) {
	base := repo(1)
	desired := withFile(base, "hardware/node-01.yaml", fmt.Sprintf(hwFmt, "node-01", 1, "node-01", 1, 42))
	desired = withFile(desired, "templates/provision.yaml", fmt.Sprintf(tmplFmt, "provision", 30))
	p, err := reconciler.MakePlan(load(t, desired), "main@sha1:abc", reconciler.Actual{Objects: stored(t, base, map[string]int{"wf-node-01": 1})}, reconciler.Options{})
	require.NoError(t, err)
	md := p.FormatMarkdown()
	require.True(t, strings.HasPrefix(md, "### tinkops plan for `main@sha1:abc`\n\n**What happens when this merges:**\n\n- hardware node-01: its network interfaces change"), md)
	require.Contains(t, md, "- template provision changed: 1 workflow uses it; none will re-run\n")
	require.Contains(t, md, "0 to create, 2 to update, 0 to delete, 1 unchanged.")
	require.Contains(t, md, "| update | `Hardware/node-01` | hardware/node-01.yaml |")
	require.Contains(t, md, "- spec.interfaces[0].dhcp.ip.address: \"10.0.1.1\"\n+ spec.interfaces[0].dhcp.ip.address: \"10.0.1.42\"\n")
}
