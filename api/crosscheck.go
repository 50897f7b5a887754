package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// An object written through the API is checked with the set-wide rules Git
// is checked with (schema.Loader.CheckIn, the code schema.Load runs): the
// fleet is read from the store, as much of it as the rules need, and the
// pushed object takes the place of its stored version. For hardware, the
// fleet index (fleetindex.go) names the few stored machines sharing a MAC
// or IP address with it, the only ones its rules can find a clash with.
// Two concurrent requests can still both pass (a MAC pushed twice at
// once); the next sync's validation of Git reports such a clash, and the
// API does not lock the store for a check a person repeats at worst.

// checkHardware refuses MACs and IP addresses used twice, and a bmcRef to
// a Machine that does not exist.
func (s *Server) checkHardware(ctx context.Context, p *pushed) error {
	hw, ok := p.decoded.(*schema.Hardware)
	if !ok {
		return nil
	}
	// Only the stored hardware sharing a MAC or IP address with hw can
	// clash with it: the index finds those, so a write costs the same
	// whatever the fleet's size.
	set := &schema.Set{}
	if err := s.index.view(ctx, s.store, func(ix *fleetIndex) { set.Hardware = ix.sharing(hw) }); err != nil {
		return err
	}
	if ref := hw.Spec.BMCRef; ref != nil && ref.Name != "" {
		o, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindMachine, Namespace: p.obj.Namespace, Name: ref.Name})
		switch state.ErrorCode(err) {
		case "":
			set.Machines = append(set.Machines, &schema.Machine{Metadata: schema.ObjectMeta{Namespace: o.Namespace, Name: o.Name}})
		case state.ENOTFOUND:
		default:
			return err
		}
	}
	if list := s.loader.CheckIn(ctx, set, hw); len(list) > 0 {
		return invalid(schemaDetails(list), "hardware %s clashes with the fleet: %s", objectName(p.obj.Namespace, p.obj.Name), problems(len(list)))
	}
	return nil
}

// checkWorkflow refuses a workflow whose template or hardware does not
// exist, whose hardwareMap names MACs no declared hardware has, or whose
// template does not render for it.
func (s *Server) checkWorkflow(ctx context.Context, p *pushed) error {
	return s.checkWorkflowIn(ctx, p, indexedFleet{s})
}

func (s *Server) checkWorkflowIn(ctx context.Context, p *pushed, fleet fleetReader) error {
	wf, ok := p.decoded.(*schema.Workflow)
	if !ok {
		return nil
	}
	ns := p.obj.Namespace
	whole, err := s.wholeHardware(ctx, []state.ObjectKey{{Kind: state.KindHardware, Namespace: ns, Name: wf.Spec.HardwareRef}})
	if err != nil {
		return err
	}
	set := &schema.Set{}
	tmpl, err := s.storedObject(ctx, state.ObjectKey{Kind: state.KindTemplate, Namespace: ns, Name: wf.Spec.TemplateRef})
	if err != nil {
		return err
	}
	if tmpl != nil {
		set.Templates = append(set.Templates, tmpl.(*schema.Template))
	}
	list, err := s.checkIn(ctx, fleet, set, wf, whole, slices.Collect(maps.Values(wf.Spec.HardwareMap)))
	if err != nil {
		return err
	}
	var details []client.Detail
	for _, e := range list {
		if e.Object == state.KindWorkflow+"/"+objectName(ns, p.obj.Name) {
			details = append(details, schemaDetails(schema.ErrorList{e})...)
			continue
		}
		// A mistake of the stored template rendered for this workflow:
		// its lines are not in the request body.
		details = append(details, client.Detail{Path: "spec.templateRef", Object: e.Object,
			Message: fmt.Sprintf("template %s does not render for hardware %s: %s", wf.Spec.TemplateRef, wf.Spec.HardwareRef, pathMessage(e))})
	}
	if len(details) > 0 {
		return invalid(details, "workflow %s cannot run: %s", objectName(ns, p.obj.Name), problems(len(details)))
	}
	return nil
}

// checkTemplate renders a pushed template for every workflow that uses it,
// as a sync would; errors point into the request body.
func (s *Server) checkTemplate(ctx context.Context, p *pushed) error {
	return s.checkTemplateIn(ctx, p, indexedFleet{s})
}

func (s *Server) checkTemplateIn(ctx context.Context, p *pushed, fleet fleetReader) error {
	t, ok := p.decoded.(*schema.Template)
	if !ok {
		return nil
	}
	users, err := s.workflowsUsing(ctx, fleet, state.ObjectKey{Kind: state.KindTemplate, Namespace: p.obj.Namespace, Name: p.obj.Name})
	if err != nil {
		return err
	}
	var workflows []*schema.Workflow
	var machines []state.ObjectKey
	var macs []string
	for _, key := range users {
		so, err := s.storedObject(ctx, key)
		if err != nil {
			return err
		}
		if so == nil {
			continue // deleted since the index was read
		}
		w := so.(*schema.Workflow)
		workflows = append(workflows, w)
		machines = append(machines, state.ObjectKey{Kind: state.KindHardware, Namespace: w.Metadata.Namespace, Name: w.Spec.HardwareRef})
		for _, mac := range w.Spec.HardwareMap {
			macs = append(macs, mac)
		}
	}
	whole, err := s.wholeHardware(ctx, machines)
	if err != nil {
		return err
	}
	list, err := s.checkIn(ctx, fleet, &schema.Set{Workflows: workflows}, t, whole, macs)
	if err != nil {
		return err
	}
	if len(list) > 0 {
		return invalid(schemaDetails(list), "template %s does not render for the workflows that use it: %s", objectName(p.obj.Namespace, p.obj.Name), problems(len(list)))
	}
	return nil
}

// checkIn runs schema.Loader.CheckIn on obj with set's templates and
// workflows and the stored hardware it needs: the machines in whole,
// decoded whole (templates are rendered for them), and the others by
// their interfaces.
//
// Only the machines with one of macs, the MACs of the workflows' hardware
// maps, are read first: the rules look a MAC up in the fleet, and a
// rendered task's worker is one of those MACs in any fleet the rules
// accept. With fewer machines the rules can only find more faults, never
// fewer (a MAC not found, not one found elsewhere), so a check that passes
// passes against the whole fleet too. One that fails is run again against
// the whole fleet, which gives its exact answer: a worker MAC spelled
// out in a template may belong to any machine.
func (s *Server) checkIn(ctx context.Context, fleet fleetReader, set *schema.Set, obj schema.Object, whole []*schema.Hardware, macs []string) (schema.ErrorList, error) {
	var err error
	if set.Hardware, err = fleet.hardware(ctx, whole, macs, false); err != nil {
		return nil, err
	}
	list := s.loader.CheckIn(ctx, set, obj)
	if len(list) == 0 {
		return nil, nil
	}
	if set.Hardware, err = fleet.hardware(ctx, whole, nil, true); err != nil {
		return nil, err
	}
	return s.loader.CheckIn(ctx, set, obj), nil
}

// wholeHardware reads and decodes the stored machines of keys that exist.
func (s *Server) wholeHardware(ctx context.Context, keys []state.ObjectKey) ([]*schema.Hardware, error) {
	var out []*schema.Hardware
	seen := map[state.ObjectKey]bool{}
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		so, err := s.storedObject(ctx, key)
		if err != nil {
			return nil, err
		}
		if so != nil {
			out = append(out, so.(*schema.Hardware))
		}
	}
	return out, nil
}

// fleetReader reads what the set-wide checks need of the stored fleet. The
// server reads its fleet index (indexedFleet); tests compare it with a
// reading of the whole store.
type fleetReader interface {
	// hardware returns stored hardware in listing order (namespace, then
	// name): the machines of whole as they are, and other machines by
	// their interfaces, those with one of macs or, when all is set, every
	// one.
	hardware(ctx context.Context, whole []*schema.Hardware, macs []string, all bool) ([]*schema.Hardware, error)
	// workflows returns the keys of the workflows, in listing order, that
	// name ref: a template by templateRef, a machine by hardwareRef or by
	// one of its MACs (macs) in their hardwareMap.
	workflows(ctx context.Context, ref state.ObjectKey, macs []string) ([]state.ObjectKey, error)
}

// indexedFleet reads the fleet index: a check costs the same whatever the
// fleet's size, but for a failing one (see checkIn).
type indexedFleet struct{ s *Server }

func (f indexedFleet) hardware(ctx context.Context, whole []*schema.Hardware, macs []string, all bool) ([]*schema.Hardware, error) {
	wholeKeys := make(map[state.ObjectKey]bool, len(whole))
	for _, h := range whole {
		wholeKeys[state.ObjectKey{Kind: state.KindHardware, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}] = true
	}
	out := slices.Clone(whole)
	err := f.s.index.view(ctx, f.s.store, func(ix *fleetIndex) {
		add := func(k state.ObjectKey) {
			if e := ix.objects[k]; e != nil && !wholeKeys[k] {
				wholeKeys[k] = true
				out = append(out, e.hardwareOf(k))
			}
		}
		if all {
			for k := range ix.objects {
				if k.Kind == state.KindHardware {
					add(k)
				}
			}
			return
		}
		for _, mac := range macs {
			for k := range ix.hwByMAC[mac].all() {
				add(k)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	sortHardware(out)
	return out, nil
}

func (f indexedFleet) workflows(ctx context.Context, ref state.ObjectKey, macs []string) ([]state.ObjectKey, error) {
	keys := map[state.ObjectKey]struct{}{}
	err := f.s.index.view(ctx, f.s.store, func(ix *fleetIndex) {
		by := ix.machines
		if ref.Kind == state.KindTemplate {
			by = ix.templates
		}
		for k := range by[ref].all() {
			keys[k] = struct{}{}
		}
		for _, mac := range macs {
			for k := range ix.byMAC[mac].all() {
				keys[k] = struct{}{}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return slices.SortedFunc(maps.Keys(keys), compareKeys), nil
}

// sortHardware puts hardware in listing order.
func sortHardware(l []*schema.Hardware) {
	slices.SortFunc(l, func(a, b *schema.Hardware) int {
		return cmp.Or(strings.Compare(a.Metadata.Namespace, b.Metadata.Namespace), strings.Compare(a.Metadata.Name, b.Metadata.Name))
	})
}

// compareKeys orders keys of one kind as listings do.
func compareKeys(a, b state.ObjectKey) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// storedObject reads and decodes a stored object; nil when there is none.
func (s *Server) storedObject(ctx context.Context, key state.ObjectKey) (schema.Object, error) {
	o, err := s.store.GetObject(ctx, key)
	switch state.ErrorCode(err) {
	case "":
		return reconciler.FromState(o)
	case state.ENOTFOUND:
		return nil, nil
	default:
		return nil, err
	}
}

// refuseIfUsed refuses to delete a template or hardware that workflows name.
func (s *Server) refuseIfUsed(ctx context.Context, obj *state.Object) error {
	return s.refuseIfUsedIn(ctx, obj, indexedFleet{s})
}

func (s *Server) refuseIfUsedIn(ctx context.Context, obj *state.Object, fleet fleetReader) error {
	users, err := s.workflowsUsing(ctx, fleet, obj.Key())
	if err != nil || len(users) == 0 {
		return err
	}
	names := make([]string, 0, 5)
	for i, wf := range users {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(users)-5))
			break
		}
		names = append(names, wf.Name)
	}
	noun := strings.ToLower(obj.Kind)
	return Errorf(state.ECONFLICT, "%s %s is used by workflow(s) %s; delete those first", noun, objectName(obj.Namespace, obj.Name), strings.Join(names, ", "))
}

// workflowsUsing lists the workflows that use ref: for a template, those
// whose templateRef names it; for hardware, those whose hardwareRef names
// it, and those whose hardwareMap names one of its MACs (a task of the
// workflow runs on it).
func (s *Server) workflowsUsing(ctx context.Context, fleet fleetReader, ref state.ObjectKey) ([]state.ObjectKey, error) {
	var macs []string
	if ref.Kind == state.KindHardware {
		hw, err := s.store.GetObject(ctx, ref)
		if err == nil {
			macs = (&schema.Hardware{Spec: schema.HardwareSpec{Interfaces: interfaces(hw)}}).MACs()
		}
	}
	return fleet.workflows(ctx, ref, macs)
}

// interfaces reads only the interfaces of a stored hardware object, which is
// what the fleet-wide checks need of every machine.
func interfaces(o *state.Object) []schema.Interface {
	var spec struct {
		Interfaces []schema.Interface `json:"interfaces"`
	}
	_ = json.Unmarshal(o.Spec, &spec)
	return spec.Interfaces
}

func objectName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func pathMessage(e *schema.Error) string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}
