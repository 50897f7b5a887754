package api

import (
	"context"
	"encoding/json"
	"fmt"
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
	wf, ok := p.decoded.(*schema.Workflow)
	if !ok {
		return nil
	}
	ns := p.obj.Namespace
	hwObj, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Namespace: ns, Name: wf.Spec.HardwareRef})
	if err != nil && state.ErrorCode(err) != state.ENOTFOUND {
		return err
	}
	set, err := s.fleet(ctx, map[state.ObjectKey]bool{{Kind: state.KindHardware, Namespace: ns, Name: wf.Spec.HardwareRef}: hwObj != nil})
	if err != nil {
		return err
	}
	tmpl, err := s.storedObject(ctx, state.ObjectKey{Kind: state.KindTemplate, Namespace: ns, Name: wf.Spec.TemplateRef})
	if err != nil {
		return err
	}
	if tmpl != nil {
		set.Templates = append(set.Templates, tmpl.(*schema.Template))
	}
	var details []client.Detail
	for _, e := range s.loader.CheckIn(ctx, set, wf) {
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
	t, ok := p.decoded.(*schema.Template)
	if !ok {
		return nil
	}
	users, err := s.workflowsUsing(ctx, p.obj.Namespace, p.obj.Name, "templateRef")
	if err != nil {
		return err
	}
	full := map[state.ObjectKey]bool{}
	var workflows []*schema.Workflow
	for _, o := range users {
		so, err := reconciler.FromState(o)
		if err != nil {
			return err
		}
		w := so.(*schema.Workflow)
		workflows = append(workflows, w)
		full[state.ObjectKey{Kind: state.KindHardware, Namespace: w.Metadata.Namespace, Name: w.Spec.HardwareRef}] = true
	}
	set, err := s.fleet(ctx, full)
	if err != nil {
		return err
	}
	set.Workflows = workflows
	if list := s.loader.CheckIn(ctx, set, t); len(list) > 0 {
		return invalid(schemaDetails(list), "template %s does not render for the workflows that use it: %s", objectName(p.obj.Namespace, p.obj.Name), problems(len(list)))
	}
	return nil
}

// fleet reads every stored hardware as the set-wide checks need it: its
// interfaces only (the MAC and IP index), except the machines in full,
// which templates are rendered for and so are decoded whole.
func (s *Server) fleet(ctx context.Context, full map[state.ObjectKey]bool) (*schema.Set, error) {
	all, err := s.listAll(ctx, state.KindHardware)
	if err != nil {
		return nil, err
	}
	set := &schema.Set{Hardware: make([]*schema.Hardware, 0, len(all))}
	for _, o := range all {
		if full[o.Key()] {
			so, err := reconciler.FromState(o)
			if err != nil {
				return nil, err
			}
			set.Hardware = append(set.Hardware, so.(*schema.Hardware))
			continue
		}
		set.Hardware = append(set.Hardware, &schema.Hardware{
			Metadata: schema.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
			Spec:     schema.HardwareSpec{Interfaces: interfaces(o)},
		})
	}
	return set, nil
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
func (s *Server) refuseIfUsed(ctx context.Context, obj *state.Object, field string) error {
	users, err := s.workflowsUsing(ctx, obj.Namespace, obj.Name, field)
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

// workflowsUsing lists the workflows whose field (templateRef or
// hardwareRef) names name in namespace. For hardware, a workflow whose
// hardwareMap names one of its MACs (a task of the workflow runs on it)
// uses it too.
func (s *Server) workflowsUsing(ctx context.Context, namespace, name, field string) ([]*state.Object, error) {
	page, err := s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return nil, err
	}
	var macs []schema.Interface
	if field == "hardwareRef" {
		hw, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Namespace: namespace, Name: name})
		if err == nil {
			macs = interfaces(hw)
		}
	}
	owned := (&schema.Hardware{Spec: schema.HardwareSpec{Interfaces: macs}}).HasMAC
	var out []*state.Object
	for _, wf := range page {
		tmpl, hw := workflowRefs(wf)
		switch {
		case wf.Namespace == namespace && ((field == "templateRef" && tmpl == name) || (field == "hardwareRef" && hw == name)):
			out = append(out, wf)
		case len(macs) > 0:
			var spec struct {
				HardwareMap map[string]string `json:"hardwareMap"`
			}
			_ = json.Unmarshal(wf.Spec, &spec)
			for _, mac := range spec.HardwareMap {
				if owned(mac) {
					out = append(out, wf)
					break
				}
			}
		}
	}
	return out, nil
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
