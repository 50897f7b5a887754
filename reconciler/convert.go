package reconciler

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// ToState turns a declared object into its stored form: metadata in the
// store's fields, the spec as JSON.
func ToState(o schema.Object, src state.Source, revision string) (*state.Object, error) {
	meta := o.GetMeta()
	var spec any
	switch x := o.(type) {
	case *schema.Hardware:
		spec = &x.Spec
	case *schema.Template:
		spec = &x.Spec
	case *schema.Workflow:
		spec = &x.Spec
	case *schema.Machine:
		spec = &x.Spec
	default:
		return nil, fmt.Errorf("unknown kind %s", o.GetKind())
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", o.GetKind(), meta.Name, err)
	}
	return &state.Object{
		Kind:        o.GetKind(),
		Namespace:   meta.Namespace,
		Name:        meta.Name,
		Labels:      maps.Clone(meta.Labels),
		Annotations: maps.Clone(meta.Annotations),
		Spec:        b,
		Source:      src,
		Revision:    revision,
		File:        o.Origin().File,
	}, nil
}

// FromState decodes a stored object into its declared type.
func FromState(o *state.Object) (schema.Object, error) {
	meta := schema.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, Annotations: o.Annotations}
	var obj schema.Object
	var spec any
	switch o.Kind {
	case state.KindHardware:
		h := &schema.Hardware{TypeMeta: schema.TypeMeta{APIVersion: schema.APIVersion, Kind: o.Kind}, Metadata: meta}
		obj, spec = h, &h.Spec
	case state.KindTemplate:
		t := &schema.Template{TypeMeta: schema.TypeMeta{APIVersion: schema.APIVersion, Kind: o.Kind}, Metadata: meta}
		obj, spec = t, &t.Spec
	case state.KindWorkflow:
		w := &schema.Workflow{TypeMeta: schema.TypeMeta{APIVersion: schema.APIVersion, Kind: o.Kind}, Metadata: meta}
		obj, spec = w, &w.Spec
	case state.KindMachine:
		m := &schema.Machine{TypeMeta: schema.TypeMeta{APIVersion: schema.BMCAPIVersion, Kind: o.Kind}, Metadata: meta}
		obj, spec = m, &m.Spec
	default:
		return nil, fmt.Errorf("%s: unknown kind", o.Key())
	}
	if len(o.Spec) > 0 {
		if err := json.Unmarshal(o.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s: decode spec: %w", o.Key(), err)
		}
	}
	return obj, nil
}

// desiredObjects lists every object of a set in its stored form.
func desiredObjects(set *schema.Set, revision string) ([]*state.Object, error) {
	out := make([]*state.Object, 0, set.Len())
	add := func(o schema.Object) error {
		so, err := ToState(o, state.SourceGit, revision)
		if err != nil {
			return err
		}
		out = append(out, so)
		return nil
	}
	for _, o := range set.Hardware {
		if err := add(o); err != nil {
			return nil, err
		}
	}
	for _, o := range set.Templates {
		if err := add(o); err != nil {
			return nil, err
		}
	}
	for _, o := range set.Workflows {
		if err := add(o); err != nil {
			return nil, err
		}
	}
	for _, o := range set.Machines {
		if err := add(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}
