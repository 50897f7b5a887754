package reconciler

import (
	"fmt"
	"strings"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// checkSets finds the WorkflowSet mistakes only the applied state shows: a
// selector that matches no machine now though the set owns workflows from
// an earlier revision. That is far more often a typo in the selector or
// in a label than a wish to drop a whole rack, so it is an error at the
// selector, never a mass action. have is the store's objects.
func checkSets(set *schema.Set, desired []*state.Object, have map[state.ObjectKey]*state.Object) schema.ErrorList {
	if len(set.WorkflowSets) == 0 {
		return nil
	}
	selected := map[schema.Key]int{}
	for _, d := range desired {
		if owner := d.Labels[schema.OwnerLabel]; owner != "" && d.Kind == state.KindWorkflow {
			selected[schema.Key{Namespace: d.Namespace, Name: owner}]++
		}
	}
	var list schema.ErrorList
	for _, ws := range set.WorkflowSets {
		k := schema.Key{Namespace: ws.Metadata.Namespace, Name: ws.Metadata.Name}
		if selected[k] > 0 {
			continue
		}
		before := 0
		for _, a := range have {
			if a.Kind == state.KindWorkflow && a.Source == state.SourceGit && a.Namespace == k.Namespace && a.Labels[schema.OwnerLabel] == k.Name {
				before++
			}
		}
		if before == 0 {
			continue
		}
		list = append(list, &schema.Error{
			Pos: ws.FieldPos("spec.hardwareSelector"), Path: "spec.hardwareSelector", Object: schema.KindWorkflowSet + "/" + k.String(),
			Message: fmt.Sprintf("hardwareSelector %q matches no hardware, but the set selected %s before; a selector that suddenly matches nothing is taken for a mistake (to retire the set, delete it)",
				ws.Spec.HardwareSelector, plural(before, "machine", "machines")),
		})
	}
	return list
}

// setConsequences says what each WorkflowSet of the plan does, machine by
// machine: the set's change gets the summary ("48 machines in rack=r7
// will run template ubuntu, at most 5 at a time"), and the start sentence
// of each workflow it owns says that the run waits for its wave.
func (p *Plan) setConsequences(set *schema.Set) {
	if len(set.WorkflowSets) == 0 {
		return
	}
	type info struct {
		ws       *schema.WorkflowSet
		selected int
		starts   []string
		said     bool    // the summary is in the plan
		first    *Change // the first change of a workflow it owns
	}
	sets := map[schema.Key]*info{}
	for _, ws := range set.WorkflowSets {
		sets[schema.Key{Namespace: ws.Metadata.Namespace, Name: ws.Metadata.Name}] = &info{ws: ws}
	}
	owner := map[state.ObjectKey]*info{}
	for _, w := range set.Workflows {
		if o := sets[schema.Key{Namespace: w.Metadata.Namespace, Name: w.Metadata.Labels[schema.OwnerLabel]}]; o != nil && w.Metadata.Labels[schema.OwnerLabel] != "" {
			o.selected++
			owner[state.ObjectKey{Kind: state.KindWorkflow, Namespace: w.Metadata.Namespace, Name: w.Metadata.Name}] = o
		}
	}
	for _, r := range p.runs {
		if o := owner[state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}]; o != nil {
			o.starts = append(o.starts, r.Hardware)
		}
	}
	summary := func(o *info, key state.ObjectKey) string {
		ws := o.ws
		what := fmt.Sprintf("%s in %s will run template %s", plural(len(o.starts), "machine", "machines"), ws.Spec.HardwareSelector, ws.Spec.TemplateRef)
		if len(o.starts) == 0 {
			what = fmt.Sprintf("no machine starts a run (%s selected)", plural(o.selected, "machine", "machines"))
		}
		o.said = true
		return fmt.Sprintf("workflow set %s: %s, %s", name(key), what, ws.Spec.Rollout.Summary(o.selected))
	}
	for i := range p.Changes {
		c := &p.Changes[i]
		switch c.Key.Kind {
		case state.KindWorkflow:
			o := owner[c.Key]
			if o == nil {
				continue
			}
			if o.first == nil {
				o.first = c
			}
			for j, s := range c.Consequences {
				prefix := "workflow " + c.Key.Name + " will "
				if rest, ok := strings.CutPrefix(s, prefix); ok {
					c.Consequences[j] = fmt.Sprintf("workflow %s (set %s, in its wave) will %s", c.Key.Name, o.ws.Metadata.Name, rest)
				}
			}
		case schema.KindWorkflowSet:
			o := sets[schema.Key{Namespace: c.Key.Namespace, Name: c.Key.Name}]
			if o == nil || c.Op == OpDelete || c.Op == OpOrphaned {
				continue
			}
			c.Consequences = append(c.Consequences, summary(o, c.Key))
		}
	}
	// A set that did not change but gains machines says so with the
	// first workflow it owns that changes.
	for k, o := range sets {
		if !o.said && len(o.starts) > 0 && o.first != nil {
			o.first.Consequences = append(o.first.Consequences, summary(o, state.ObjectKey{Kind: schema.KindWorkflowSet, Namespace: k.Namespace, Name: k.Name}))
		}
	}
}
