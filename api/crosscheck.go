package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// The checks here are the set-wide rules of schema.Load (unique MACs and IPs,
// references that resolve, templates that render for their workflows)
// applied to one pushed object against the store. They read whole kinds:
// the fleet is at most tens of thousands of objects. Two concurrent requests
// can still both pass them (a MAC pushed twice at once); the next sync's
// validation of Git reports such a clash, and the API does not lock the
// store for a check a person repeats at worst.

// checkHardware refuses MACs and IP addresses that other hardware has, and a
// bmcRef to a Machine that does not exist.
func (s *Server) checkHardware(ctx context.Context, p *pushed) error {
	hw, ok := p.decoded.(*schema.Hardware)
	if !ok {
		return nil
	}
	all, err := s.listAll(ctx, state.KindHardware)
	if err != nil {
		return err
	}
	macs, ips := map[string]string{}, map[string]string{}
	for _, o := range all {
		if o.Key() == p.obj.Key() {
			continue
		}
		for _, iface := range interfaces(o) {
			if iface.DHCP == nil {
				continue
			}
			if iface.DHCP.MAC != "" {
				macs[iface.DHCP.MAC] = objectName(o.Namespace, o.Name)
			}
			if iface.DHCP.IP != nil && iface.DHCP.IP.Address != "" {
				ips[iface.DHCP.IP.Address] = objectName(o.Namespace, o.Name)
			}
		}
	}
	var details []client.Detail
	own := map[string]int{}
	for i, iface := range hw.Spec.Interfaces {
		d := iface.DHCP
		if d == nil {
			continue
		}
		if d.MAC != "" {
			path := fmt.Sprintf("spec.interfaces[%d].dhcp.mac", i)
			if other, ok := macs[d.MAC]; ok {
				details = append(details, client.Detail{Path: path, Message: fmt.Sprintf("MAC %s is already used by hardware %s", d.MAC, other)})
			} else if j, dup := own[d.MAC]; dup {
				details = append(details, client.Detail{Path: path, Message: fmt.Sprintf("MAC %s is already used by interfaces[%d] of this hardware", d.MAC, j)})
			}
			own[d.MAC] = i
		}
		if d.IP != nil && d.IP.Address != "" {
			if other, ok := ips[d.IP.Address]; ok {
				details = append(details, client.Detail{Path: fmt.Sprintf("spec.interfaces[%d].dhcp.ip.address", i), Message: fmt.Sprintf("IP address %s is already used by hardware %s", d.IP.Address, other)})
			}
		}
	}
	if ref := hw.Spec.BMCRef; ref != nil && ref.Name != "" {
		_, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindMachine, Namespace: p.obj.Namespace, Name: ref.Name})
		switch state.ErrorCode(err) {
		case "":
		case state.ENOTFOUND:
			details = append(details, client.Detail{Path: "spec.bmcRef.name", Message: fmt.Sprintf("Machine %q does not exist%s", ref.Name, inNamespace(p.obj.Namespace))})
		default:
			return err
		}
	}
	if len(details) > 0 {
		return invalid(details, "hardware %s clashes with the fleet: %s", objectName(p.obj.Namespace, p.obj.Name), problems(len(details)))
	}
	return nil
}

// checkWorkflow refuses a workflow whose template or hardware does not
// exist, whose hardwareMap names MACs the hardware does not have, or whose
// template does not render for it.
func (s *Server) checkWorkflow(ctx context.Context, p *pushed) error {
	wf, ok := p.decoded.(*schema.Workflow)
	if !ok {
		return nil
	}
	ns := p.obj.Namespace
	var details []client.Detail
	tmpl, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindTemplate, Namespace: ns, Name: wf.Spec.TemplateRef})
	if state.ErrorCode(err) == state.ENOTFOUND {
		details = append(details, client.Detail{Path: "spec.templateRef", Message: fmt.Sprintf("template %q does not exist%s", wf.Spec.TemplateRef, inNamespace(ns))})
		tmpl = nil
	} else if err != nil {
		return err
	}
	hwObj, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Namespace: ns, Name: wf.Spec.HardwareRef})
	if state.ErrorCode(err) == state.ENOTFOUND {
		details = append(details, client.Detail{Path: "spec.hardwareRef", Message: fmt.Sprintf("hardware %q does not exist%s", wf.Spec.HardwareRef, inNamespace(ns))})
		hwObj = nil
	} else if err != nil {
		return err
	}
	if hwObj != nil {
		hw, err := decodeHardware(hwObj)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(wf.Spec.HardwareMap))
		for k := range wf.Spec.HardwareMap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if mac := wf.Spec.HardwareMap[k]; mac != "" && !hw.HasMAC(mac) {
				has := strings.Join(hw.MACs(), ", ")
				if has == "" {
					has = "no MAC addresses"
				}
				details = append(details, client.Detail{Path: "spec.hardwareMap." + k, Message: fmt.Sprintf("%s is not a MAC address of hardware %s (it has %s)", mac, wf.Spec.HardwareRef, has)})
			}
		}
	}
	if len(details) == 0 && tmpl != nil && hwObj != nil {
		t, err := s.loadedTemplate(tmpl)
		if err != nil {
			return err
		}
		if t != nil {
			list, err := s.render(ctx, t, hwObj, wf.Spec.HardwareMap)
			if err != nil {
				return err
			}
			for _, e := range list {
				details = append(details, client.Detail{Path: "spec.templateRef", Object: e.Object,
					Message: fmt.Sprintf("template %s does not render for hardware %s: %s", wf.Spec.TemplateRef, wf.Spec.HardwareRef, pathMessage(e))})
			}
		}
	}
	if len(details) > 0 {
		return invalid(details, "workflow %s cannot run: %s", objectName(ns, p.obj.Name), problems(len(details)))
	}
	return nil
}

// maxRenderFailures bounds how many failing workflows a template check
// reports; the first few say what is wrong.
const maxRenderFailures = 10

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
	var details []client.Detail
	failing := 0
	for _, wf := range users {
		_, hwName := workflowRefs(wf)
		hwObj, err := s.store.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Namespace: wf.Namespace, Name: hwName})
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue // the workflow is broken already; not this template's doing
		} else if err != nil {
			return err
		}
		var spec schema.WorkflowSpec
		_ = json.Unmarshal(wf.Spec, &spec)
		list, err := s.render(ctx, t, hwObj, spec.HardwareMap)
		if err != nil {
			return err
		}
		for _, e := range list {
			details = append(details, client.Detail{Path: "spec.data", Line: e.Line, Column: e.Column,
				Message: fmt.Sprintf("rendered for workflow %s (hardware %s): %s", wf.Name, hwName, pathMessage(e))})
		}
		if len(list) > 0 {
			if failing++; failing == maxRenderFailures {
				break
			}
		}
	}
	if len(details) > 0 {
		return invalid(details, "template %s does not render for the workflows that use it: %s", objectName(p.obj.Namespace, p.obj.Name), problems(len(details)))
	}
	return nil
}

// render renders t for a machine with a hardwareMap as a run would, and
// checks the result. Every machine's MACs are passed along, since a task's
// worker must be the MAC of a known machine.
func (s *Server) render(ctx context.Context, t *schema.Template, hwObj *state.Object, hwMap map[string]string) (schema.ErrorList, error) {
	hw, err := decodeHardware(hwObj)
	if err != nil {
		return nil, err
	}
	set := &schema.Set{Templates: []*schema.Template{t}, Hardware: []*schema.Hardware{hw}}
	all, err := s.listAll(ctx, state.KindHardware)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.Key() != hwObj.Key() {
			set.Hardware = append(set.Hardware, &schema.Hardware{
				Metadata: schema.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
				Spec:     schema.HardwareSpec{Interfaces: interfaces(o)},
			})
		}
	}
	ns := t.Metadata.Namespace
	_, list := s.loader.RenderFor(ctx, set, schema.Key{Namespace: ns, Name: t.Metadata.Name}, schema.Key{Namespace: hwObj.Namespace, Name: hwObj.Name}, hwMap)
	return list, nil
}

// loadedTemplate decodes a stored template through the loader, which parses
// its text for rendering. A stored template the loader refuses (the schema
// got stricter since it was stored) is not checked: nil.
func (s *Server) loadedTemplate(o *state.Object) (*schema.Template, error) {
	so, err := reconciler.FromState(o)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(so)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Key(), err)
	}
	objs, _, list := s.loader.DecodeFile("stored-template.json", b)
	if len(list) > 0 || len(objs) != 1 {
		return nil, nil
	}
	t, _ := objs[0].(*schema.Template)
	return t, nil
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

// workflowsUsing lists the workflows in namespace whose field
// (templateRef or hardwareRef) names name.
func (s *Server) workflowsUsing(ctx context.Context, namespace, name, field string) ([]*state.Object, error) {
	page, err := s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return nil, err
	}
	var out []*state.Object
	for _, wf := range page {
		if wf.Namespace != namespace {
			continue
		}
		tmpl, hw := workflowRefs(wf)
		if (field == "templateRef" && tmpl == name) || (field == "hardwareRef" && hw == name) {
			out = append(out, wf)
		}
	}
	return out, nil
}

// decodeHardware decodes a stored hardware object.
func decodeHardware(o *state.Object) (*schema.Hardware, error) {
	so, err := reconciler.FromState(o)
	if err != nil {
		return nil, err
	}
	hw, ok := so.(*schema.Hardware)
	if !ok {
		return nil, fmt.Errorf("%s: not hardware", o.Key())
	}
	return hw, nil
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

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

func pathMessage(e *schema.Error) string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}
