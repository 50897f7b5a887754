package reconciler

import (
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

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
	case *schema.WorkflowSet:
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
	case schema.KindWorkflowSet:
		ws := &schema.WorkflowSet{TypeMeta: schema.TypeMeta{APIVersion: schema.SetAPIVersion, Kind: o.Kind}, Metadata: meta}
		obj, spec = ws, &ws.Spec
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
	var c desiredCache
	d, err := c.objects(set, revision)
	return d.objects, err
}

// declared is every object of a set in its stored form, in eachObject's
// order.
type declared struct {
	// objects are this sync's copies, Revision set.
	objects []*state.Object
	// ids are the objects' Identities and sources the cached forms they
	// were copied from, never modified.
	ids     []schema.Identity
	sources []*state.Object
}

// desiredCache keeps the stored form of declared objects by their
// schema.Identity: an unchanged file yields objects of the same Identity,
// so a sync encodes only the objects that changed since the last one.
// Like the loader's caches it keeps what the latest sync used; a published
// map and its objects are never modified.
type desiredCache struct {
	mu      sync.Mutex
	entries map[schema.Identity]*state.Object // Revision left empty
	// encoded counts objects encoded (cache misses), for tests.
	encoded atomic.Int64
}

// objects is desiredObjects, from the cache where it can be. When few
// objects changed, the next cache is the last one with the new objects
// added (a bulk copy, not 20,000 insertions), and the objects it no longer
// serves stay until they outnumber maxStale(n); then it is built anew from
// the set alone.
func (c *desiredCache) objects(set *schema.Set, revision string) (declared, error) {
	c.mu.Lock()
	cached := c.entries
	c.mu.Unlock()
	n := set.Len()
	out := make([]*state.Object, 0, n)
	// One allocation for the per-sync copies, where there were n.
	slab := make([]state.Object, 0, n)
	type entry struct {
		id schema.Identity
		so *state.Object
	}
	var added []entry
	// The cache's answer for each object first, then the misses encoded
	// (on every CPU when there are many: a 100,000-machine fleet's first
	// sync encodes 200,000 objects, 0.8 s on one), then the copies, in
	// order.
	objs := make([]schema.Object, 0, n)
	_ = eachObject(set, func(o schema.Object) error { objs = append(objs, o); return nil })
	ids := make([]schema.Identity, len(objs))
	sources := make([]*state.Object, len(objs)) // the cached form of out[i]
	var misses []int
	for i, o := range objs {
		ids[i] = schema.IdentityOf(o)
		if so := cached[ids[i]]; !ids[i].IsZero() && so != nil {
			sources[i] = so
		} else {
			misses = append(misses, i)
		}
	}
	hits := len(objs) - len(misses)
	errs := make([]error, len(misses))
	shareOut(len(misses), func(j int) {
		sources[misses[j]], errs[j] = ToState(objs[misses[j]], state.SourceGit, "")
	})
	for _, err := range errs {
		if err != nil {
			return declared{}, err // the first in the set's order
		}
	}
	c.encoded.Add(int64(len(misses)))
	for _, i := range misses {
		if !ids[i].IsZero() {
			added = append(added, entry{ids[i], sources[i]})
		}
	}
	for _, so := range sources {
		// A copy per sync: planning writes its bookkeeping fields. Spec,
		// labels and annotations are shared and only ever read.
		slab = append(slab, *so)
		d := &slab[len(slab)-1]
		d.Revision = revision
		out = append(out, d)
	}
	next := cached
	switch {
	case len(added) == 0 && hits == len(cached):
		// Nothing new and nothing gone: the same map serves.
	case len(cached)-hits <= maxStale(n):
		next = maps.Clone(cached)
		if next == nil {
			next = make(map[schema.Identity]*state.Object, len(added))
		}
		for _, e := range added {
			next[e.id] = e.so
		}
	default:
		next = make(map[schema.Identity]*state.Object, n)
		for i, id := range ids {
			if !id.IsZero() {
				next[id] = sources[i]
			}
		}
	}
	c.mu.Lock()
	c.entries = next
	c.mu.Unlock()
	return declared{objects: out, ids: ids, sources: sources}, nil
}

// maxStale is how many objects the cache may keep beyond the n a sync
// used before it is built anew.
func maxStale(n int) int { return n/8 + 64 }

// eachObject calls fn for every object of set, kinds in the order a plan
// lists them.
func eachObject(set *schema.Set, fn func(schema.Object) error) error {
	for _, o := range set.Hardware {
		if err := fn(o); err != nil {
			return err
		}
	}
	for _, o := range set.Templates {
		if err := fn(o); err != nil {
			return err
		}
	}
	for _, o := range set.Workflows {
		if err := fn(o); err != nil {
			return err
		}
	}
	for _, o := range set.Machines {
		if err := fn(o); err != nil {
			return err
		}
	}
	for _, o := range set.WorkflowSets {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}
