package reconciler

import (
	"context"
	"errors"
	"slices"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Planning only what changed.
//
// A plan of a one-file commit to a fleet of 20,000 objects finds one
// change, but the full plan compares every declared object with the
// store's (makePlan, needsRuns): 20,000 lookups and comparisons, ~12 ms.
// Almost all of those objects are clean (see clean): the store holds
// exactly what Git declares. Such an object contributes to a plan only
// its count in Unchanged: no change, no run, no consequence. And whether
// it is clean depends only on the declared object and the store's, so it
// stays clean while neither changes.
//
// So each plan made from a loaded set (HashFS) leaves a memo in the
// mirror: each declared object's Identity and stored form by position
// (the order of eachObject), and the positions of those that were not
// clean. From then on the mirror marks the key of every object it puts or
// removes (touched): the reconciler's own writes, and every other
// writer's, which the mirror reads from the event log before each plan.
// The next plan then looks only at
//
//   - the positions whose Identity changed (a loaded object is the same,
//     field for field, as long as its Identity is),
//   - the positions not clean at the last plan,
//   - the positions of touched keys;
//
// every other position holds the same declared object and the same
// store object as at the last plan, where it was clean, so it is clean
// now. Counting Unchanged and Git-managed objects needs no lookup: every
// other position is one of each.
//
// What depends on the whole set goes the full way, which makes a new
// memo: a set with WorkflowSets (their checks and consequences count
// every workflow they own), any Git-managed object no longer declared
// (finding it, prune and its guard need every key), a declared object
// whose key moved to another position (a file added, removed or
// renamed), more than maxIncremental positions to look at, an error
// encoding an object. The mirror drops the memo whenever it lists the
// store again: the first plan, a failed or conflicting Apply (so a
// conflict's retry plans in full), events lost to retention.
// TestIncrementalPlanMatchesFull compares both ways over random commits
// and API writes.

// maxIncremental is the most positions an incremental plan looks at;
// beyond it the full plan costs little more.
const maxIncremental = 2048

// planMemo is what a plan from a loaded set left for the next (see above).
// It is the mirror's, read and replaced under its lock.
type planMemo struct {
	ids     []schema.Identity // by position
	sources []*state.Object   // the stored form at each position, never modified
	pos     map[state.ObjectKey]int
	unclean []int // positions not clean at the plan, in order
}

// newPlanMemo is the memo of a full plan of d, whose objects at the
// positions unclean (in order) were not clean.
func newPlanMemo(d declared, unclean []int) *planMemo {
	m := &planMemo{ids: d.ids, sources: d.sources, unclean: unclean, pos: make(map[state.ObjectKey]int, len(d.sources))}
	for i, so := range d.sources {
		m.pos[so.Key()] = i
	}
	return m
}

// errFullPlan stops a walk that found the incremental plan out of reach.
var errFullPlan = errors.New("plan in full")

// planIncremental makes the plan of set from the memo of the last plan
// when it can (see above), and reports whether it did; otherwise the
// caller makes the full plan. It runs under the mirror's lock, in m.
func (r *Reconciler) planIncremental(ctx context.Context, m *mirror, set *schema.Set, revision string, opts Options) (*Plan, bool, error) {
	memo := m.memo
	n := set.Len()
	if memo == nil || len(memo.ids) != n || len(set.WorkflowSets) > 0 {
		return nil, false, nil
	}
	// The positions whose object changed, and their new stored forms.
	var changed []int
	var forms []*state.Object
	var ids []schema.Identity
	i := 0
	err := eachObject(set, func(o schema.Object) error {
		id := schema.IdentityOf(o)
		if id.IsZero() || id != memo.ids[i] {
			if len(changed) == maxIncremental {
				return errFullPlan
			}
			so, err := ToState(o, state.SourceGit, "")
			r.desired.encoded.Add(1)
			if err != nil || so.Key() != memo.sources[i].Key() {
				return errFullPlan // the full plan reports the error, or finds the key
			}
			changed = append(changed, i)
			forms = append(forms, so)
			ids = append(ids, id)
		}
		i++
		return nil
	})
	if err != nil {
		return nil, false, nil
	}
	look := slices.Clone(changed)
	look = append(look, memo.unclean...)
	for key := range m.touched {
		if p, ok := memo.pos[key]; ok {
			look = append(look, p)
		}
	}
	slices.Sort(look)
	look = slices.Compact(look)
	if len(look) > maxIncremental {
		return nil, false, nil
	}
	have := m.objects
	desired := make([]*state.Object, len(look))
	matched := n - len(look) // Git-managed objects still declared
	for j, p := range look {
		so := memo.sources[p]
		if k, ok := slices.BinarySearch(changed, p); ok {
			so = forms[k]
		}
		d := *so
		d.Revision = revision
		desired[j] = &d
		if a := have[d.Key()]; a != nil && a.Source == state.SourceGit {
			matched++
		}
	}
	if matched != m.gitObjects {
		return nil, false, nil // a Git-managed object is no longer declared
	}
	// With every Git-managed object declared, prune has nothing to do:
	// needsRuns asks only about the workflows that are not clean.
	needOpts := opts
	needOpts.Prune = false
	var actual Actual
	actual.Runs, actual.RunNumbers, err = readRuns(ctx, r.store, needsRuns(desired, have, needOpts))
	if err != nil {
		return nil, false, err
	}
	var unclean []int
	plan := makePlan(set, desired, revision, have, actual, opts, planScope{others: n - len(look), gitObjects: m.gitObjects, unclean: &unclean})
	for k, p := range changed {
		memo.ids[p], memo.sources[p] = ids[k], forms[k]
	}
	memo.unclean = memo.unclean[:0]
	for _, j := range unclean {
		memo.unclean = append(memo.unclean, look[j])
	}
	m.rememberLocked(memo)
	m.incremental++
	return plan, true, nil
}
