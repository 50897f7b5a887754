package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// planView is everything a plan says and does: each change with its
// fields, consequences and the object it writes, the unchanged count,
// the guard and the runs it starts.
func planView(t *testing.T, p *Plan) string {
	t.Helper()
	type change struct {
		Change
		Desired *state.Object `json:"desired,omitempty"`
		Actual  *state.Object `json:"actual,omitempty"`
	}
	v := struct {
		Revision  string
		Changes   []change
		Unchanged int
		Blocked   string
		Runs      []*state.WorkflowRun
	}{Revision: p.Revision, Unchanged: p.Unchanged, Blocked: p.Blocked, Runs: p.runs}
	for _, c := range p.Changes {
		v.Changes = append(v.Changes, change{Change: c, Desired: c.desired, Actual: c.actual})
	}
	b, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	return string(b)
}

// TestIncrementalPlanMatchesFull runs random series of commits (files
// changed, added, removed, broken and fixed, tink.cue's prune, a
// WorkflowSet), API writes (overrides, status updates, deletions, objects
// of the API's own) and run transitions, planning and syncing each
// revision with a reconciler that plans incrementally where it can; each
// plan must be the one a new reconciler (which plans in full) makes from
// the same store: every change with its fields, consequences and
// objects, the unchanged count, the guard and the runs.
func TestIncrementalPlanMatchesFull(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testIncrementalPlan(t, seed, 80)
		})
	}
}

func testIncrementalPlan(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 21))
	st := openStore(t, badger.Options{})
	opts := Options{Prune: seed%2 == 0}
	r := New(Config{Store: st, Plan: opts})
	const n = 8
	fsys := fleet(n)
	hwName := func(i int) string { return fmt.Sprintf("hardware/node-%02d.yaml", i) }
	wfName := func(i int) string { return fmt.Sprintf("workflows/wf-%02d.yaml", i) }
	edit := func(name, old, new string) {
		if f := fsys[name]; f != nil {
			fsys[name] = &fstest.MapFile{Data: []byte(strings.Replace(string(f.Data), old, new, 1))}
		}
	}
	// relabel sets a machine's labels.
	relabel := func(i int, labels string) {
		if f := fsys[hwName(i)]; f != nil {
			lines := strings.Split(string(f.Data), "\n")
			lines[2] = fmt.Sprintf("metadata: {name: node-%02d, labels: {%s}}", i, labels)
			fsys[hwName(i)] = &fstest.MapFile{Data: []byte(strings.Join(lines, "\n"))}
		}
	}
	broken := ""
	var undo func() // what the next step takes back
	randKey := func() state.ObjectKey {
		i := 1 + rng.IntN(n+1)
		if rng.IntN(2) == 0 {
			return state.ObjectKey{Kind: state.KindHardware, Name: fmt.Sprintf("node-%02d", i)}
		}
		return state.ObjectKey{Kind: state.KindWorkflow, Name: fmt.Sprintf("wf-%02d", i)}
	}
	full := 0
	for step := 0; step < steps; step++ {
		fsys = without(fsys)
		if undo != nil {
			undo()
			undo = nil
		}
		if broken != "" {
			fsys[broken] = &fstest.MapFile{Data: []byte(strings.TrimSuffix(string(fsys[broken].Data), "  :: broken\n"))}
			broken = ""
		}
		i := 1 + rng.IntN(n)
		switch rng.IntN(24) {
		case 0, 1, 2:
			relabel(i, fmt.Sprintf("step: %q", fmt.Sprint(step)))
		case 3, 4:
			if f := fsys[wfName(i)]; f != nil {
				fsys[wfName(i)] = &fstest.MapFile{Data: []byte(strings.Split(string(f.Data), "  run:")[0] + fmt.Sprintf("  run: %d\n", step))}
			}
		case 5:
			edit("templates/provision.yaml", "timeout: 60", fmt.Sprintf("timeout: %d", 60+step))
		case 6:
			if f := fsys[wfName(i)]; f != nil && !strings.Contains(string(f.Data), "disabled: true") {
				edit(wfName(i), "templateRef:", "disabled: true\n  templateRef:")
			} else {
				edit(wfName(i), "disabled: true\n  ", "")
			}
		case 7:
			// A new machine and its workflow (to stay: taken away, they
			// would be orphans for good with prune off).
			more := fleet(n + 1)
			fsys[hwName(n+1)], fsys[wfName(n+1)] = more[hwName(n+1)], more[wfName(n+1)]
		case 8:
			// A workflow removed from Git (an orphan), for one step.
			gone := fsys[wfName(i)]
			fsys = without(fsys, wfName(i))
			undo = func() { fsys[wfName(i)] = gone }
		case 9:
			if rng.IntN(2) == 0 {
				fsys["tink.cue"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("prune: {enabled: %v, maxShare: 0.5}\n", rng.IntN(2) == 0))}
			} else {
				fsys = without(fsys, "tink.cue")
			}
		case 10:
			// A broken file: the revision is not applied, and the next
			// step fixes it.
			if fsys[hwName(i)] != nil {
				broken = hwName(i)
				fsys[broken] = &fstest.MapFile{Data: append(append([]byte{}, fsys[broken].Data...), "  :: broken\n"...)}
			}
		case 11:
			// An API override of a Git-managed object, or a spec change
			// without one.
			obj, err := st.GetObject(ctx, randKey())
			if err == nil {
				if rng.IntN(2) == 0 && obj.Override == nil {
					obj.Override = &state.Override{By: state.APIUser("alice"), At: time.Unix(0, 0), GitSpec: obj.Spec}
				}
				if obj.Kind == state.KindHardware {
					obj.Spec = []byte(strings.Replace(string(obj.Spec), "52:54", "52:55", 1))
				} else {
					obj.Labels = map[string]string{"api": fmt.Sprint(step)}
				}
				_, err = st.PutObject(ctx, state.APIUser("alice"), obj)
				require.NoError(t, err)
			}
		case 12:
			// A status update (the engine's, the netboot toggles').
			obj, err := st.GetObject(ctx, randKey())
			if err == nil {
				obj.Status = []byte(fmt.Sprintf(`{"lastRun":%d,"step":%d}`, LastRun(obj), step))
				_, err = st.PutObject(ctx, state.ActorReconciler, obj)
				require.NoError(t, err)
			}
		case 13:
			// Deleted through the API, or an object of the API's own.
			key := randKey()
			switch rng.IntN(3) {
			case 0:
				// A Git-managed object no Git file declares (left by
				// another server's sync, or restored from a backup), for
				// one step.
				ghost := state.ObjectKey{Kind: state.KindHardware, Name: "ghost"}
				_, err := st.PutObject(ctx, state.ActorReconciler, &state.Object{Kind: ghost.Kind, Name: ghost.Name, Source: state.SourceGit, File: "hardware/ghost.yaml", Spec: []byte(`{}`)})
				require.NoError(t, err)
				undo = func() { _ = st.DeleteObject(ctx, state.APIUser("alice"), ghost, 0) }
			case 1:
				_ = st.DeleteObject(ctx, state.APIUser("alice"), key, 0)
			default:
				key.Name = fmt.Sprintf("adhoc-%d", rng.IntN(3))
				if key.Kind == state.KindHardware {
					_, err := st.PutObject(ctx, state.APIUser("alice"), &state.Object{Kind: key.Kind, Name: key.Name, Source: state.SourceAPI, Spec: []byte(`{}`)})
					require.NoError(t, err)
				}
			}
		case 14:
			// A run moves on.
			page, err := st.ListRuns(ctx, state.RunQuery{})
			require.NoError(t, err)
			if len(page.Runs) > 0 {
				run := page.Runs[rng.IntN(len(page.Runs))]
				run.State = []state.RunState{state.RunRunning, state.RunSuccess, state.RunFailed}[rng.IntN(3)]
				_, err = st.PutRun(ctx, state.ActorReconciler, run)
				require.NoError(t, err)
			}
		case 15:
			// A WorkflowSet, for one step.
			fsys["sets/all.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: tinkops.dev/v1alpha1\nkind: WorkflowSet\nmetadata: {name: all}\nspec:\n  templateRef: provision\n  hardwareSelector: set=yes\n  rollout: {maxInFlight: 2}\n")}
			relabel(i, "set: \"yes\"")
			undo = func() {
				// And the operator deletes what the set made, which prune
				// (when off) keeps.
				fsys = without(fsys, "sets/all.yaml")
				page, err := st.ListObjects(ctx, state.ObjectQuery{})
				require.NoError(t, err)
				for _, o := range page.Objects {
					if o.Kind == schema.KindWorkflowSet || o.Labels[schema.OwnerLabel] == "all" {
						require.NoError(t, st.DeleteObject(ctx, state.APIUser("alice"), o.Key(), 0))
					}
				}
			}
		default:
			relabel(i, fmt.Sprintf("step: %q", fmt.Sprint(step)))
		}
		s := snap(fmt.Sprintf("r%d", step), fsys)
		fresh := func(o Options) (*Plan, string) {
			p, errs, err := New(Config{Store: st, Plan: opts}).planSnapshot(ctx, s, o)
			require.NoError(t, err)
			if len(errs) > 0 {
				return nil, errs.Error()
			}
			return p, ""
		}
		if rng.IntN(3) > 0 {
			// As the API's diff plans.
			want, wantErrs := fresh(opts)
			got, errs, err := r.PlanSnapshot(ctx, s)
			require.NoError(t, err)
			require.Equal(t, wantErrs, errs.Error(), "step %d", step)
			if want != nil {
				require.Equal(t, planView(t, want), planView(t, got), "step %d", step)
			}
		}
		if rng.IntN(3) > 0 {
			o := opts
			o.syncing = true
			want, wantErrs := fresh(o)
			out, err := r.Sync(ctx, s)
			require.NoError(t, err)
			require.Equal(t, wantErrs, out.Errors.Error(), "step %d", step)
			if want != nil {
				want.batch("") // as Sync's: it sets the status of what starts a run
				require.Equal(t, planView(t, want), planView(t, out.Plan), "step %d", step)
			}
		}
		if r.actual.memo == nil {
			full++
		}
	}
	t.Logf("%d plans from a memo; %d steps left none", r.actual.incremental, full)
	require.Greater(t, r.actual.incremental, steps/4, "most plans are incremental")
	requireMirrorsStore(t, r, st)
}
