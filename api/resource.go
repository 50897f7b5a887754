package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// List page sizes.
const (
	defaultListLimit = 500
	maxListLimit     = 5000
)

// kind serves one collection (/v1/hardware, /v1/templates, /v1/workflows):
// the parts every kind shares live here, and each kind's file fills in the
// hooks.
type kind struct {
	s    *Server
	res  client.Resource
	kind string

	// check runs the checks that need other stored objects on an object
	// about to be written (old is nil on create). It returns EINVALID with
	// details, or a store error.
	check func(ctx context.Context, old *state.Object, p *pushed) error
	// authorize refuses a write that the caller's role may not make even
	// though the route lets it write this kind (old is nil on create);
	// EFORBIDDEN.
	authorize func(old *state.Object, p *pushed, who *Principal) error
	// runs returns the runs a write starts, and sets what they change in
	// the object's status (workflows only).
	runs func(ctx context.Context, old *state.Object, p *pushed, who *Principal) ([]*state.WorkflowRun, error)
	// decorate returns what the kind shows beyond each stored object (a
	// workflow's run, a machine's workflow), stamped with what it was made
	// from (see listcache.go). full is set when one object is read rather
	// than a list. kept holds, per object, the list item made from its
	// version or nil: its derived values spare reading the object again.
	decorate func(ctx context.Context, objs []*state.Object, full bool, kept []*listItem) ([]extras, error)
	// beforeDelete refuses a deletion that would leave other objects
	// broken (ECONFLICT).
	beforeDelete func(ctx context.Context, obj *state.Object) error
	// byHardware lists the objects that name a machine (workflows: the
	// ?hardware= filter); nil when the kind has no such filter.
	byHardware func(ctx context.Context, hw state.ObjectKey) ([]*state.Object, error)
}

// key returns the key of the object a request names.
func (k *kind) key(r *http.Request, c *call) state.ObjectKey {
	return state.ObjectKey{Kind: k.kind, Namespace: r.URL.Query().Get("namespace"), Name: c.params.ByName("name")}
}

// noun names an object in messages: "hardware node-01", "workflow tink-system/wf".
func (k *kind) noun(key state.ObjectKey) string {
	if key.Namespace == "" {
		return k.res.Noun() + " " + key.Name
	}
	return k.res.Noun() + " " + key.Namespace + "/" + key.Name
}

// wire converts stored objects to the API's shape and decorates them.
func (k *kind) wire(ctx context.Context, objs []*state.Object, full bool) ([]client.Object, error) {
	ex, err := k.extrasOf(ctx, objs, full, nil)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, len(objs))
	for i, o := range objs {
		out[i] = toWire(o)
		ex[i].apply(&out[i])
	}
	return out, nil
}

func (k *kind) list(w http.ResponseWriter, r *http.Request, c *call) error {
	// Nothing read for a list is changed: the store may share its
	// decodings.
	ctx := state.SharedReads(r.Context())
	q := r.URL.Query()
	sel, err := state.ParseSelector(q.Get("labelSelector"))
	if err != nil {
		return err
	}
	limit, err := queryLimit(r, defaultListLimit, maxListLimit)
	if err != nil {
		return err
	}
	if hw := q.Get("hardware"); hw != "" && k.byHardware != nil {
		return k.listByHardware(ctx, w, state.ObjectKey{Kind: state.KindHardware, Namespace: q.Get("namespace"), Name: hw}, sel)
	}
	page, err := k.s.store.ListObjects(ctx, state.ObjectQuery{
		Kind: k.kind, Namespace: q.Get("namespace"), Selector: sel, Limit: limit, Continue: q.Get("continue"),
	})
	if err != nil {
		return err
	}
	items, err := k.listItems(ctx, page.Objects)
	if err != nil {
		return err
	}
	return k.s.writeList(w, k.kind, page.Continue, items)
}

// listByHardware answers a list filtered by machine: every object that
// names it (one page: a machine has few), in name order.
func (k *kind) listByHardware(ctx context.Context, w http.ResponseWriter, hw state.ObjectKey, sel state.Selector) error {
	objs, err := k.byHardware(ctx, hw)
	if err != nil {
		return err
	}
	kept := objs[:0]
	for _, o := range objs {
		if sel.Matches(o.Labels) {
			kept = append(kept, o)
		}
	}
	items, err := k.listItems(ctx, kept)
	if err != nil {
		return err
	}
	return k.s.writeList(w, k.kind, "", items)
}

func (k *kind) get(w http.ResponseWriter, r *http.Request, c *call) error {
	ctx := state.SharedReads(r.Context()) // nothing read is changed
	obj, err := k.load(ctx, k.key(r, c))
	if err != nil {
		return err
	}
	out, err := k.wire(ctx, []*state.Object{obj}, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out[0])
}

// load reads one object, with a message that names it as the API does.
func (k *kind) load(ctx context.Context, key state.ObjectKey) (*state.Object, error) {
	obj, err := k.s.store.GetObject(ctx, key)
	if state.ErrorCode(err) == state.ENOTFOUND {
		return nil, Errorf(state.ENOTFOUND, "%s not found", k.noun(key))
	}
	return obj, err
}

func (k *kind) create(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := k.s.decodeBody(r, k.kind)
	if err != nil {
		return err
	}
	if ns := r.URL.Query().Get("namespace"); ns != "" && ns != p.obj.Namespace {
		return Errorf(state.EINVALID, "the query names namespace %q but the object is in %q", ns, p.obj.Namespace)
	}
	key := p.obj.Key()
	ctx := r.Context()
	if cur, err := k.s.store.GetObject(ctx, key); err == nil {
		return Errorf(state.ECONFLICT, "%s already exists (source %s); update it with PUT %s", k.noun(key), cur.Source, objectURL(k.res, key))
	} else if state.ErrorCode(err) != state.ENOTFOUND {
		return err
	}
	if k.authorize != nil {
		if err := k.authorize(nil, p, c.who); err != nil {
			return err
		}
	}
	if k.check != nil {
		if err := k.check(ctx, nil, p); err != nil {
			return err
		}
	}
	p.obj.ResourceVersion = 0
	b := &state.Batch{Actor: c.actor()}
	if k.runs != nil {
		runs, err := k.runs(ctx, nil, p, c.who)
		if err != nil {
			return err
		}
		b.Runs = runs
	}
	b.Put(p.obj, fmt.Sprintf("%s created through the API by %s", key, c.who.Name))
	res, err := k.s.store.Apply(ctx, b)
	if err != nil {
		return err
	}
	out, err := k.wire(ctx, res.Objects[:1], true)
	if err != nil {
		return err
	}
	w.Header().Set("Location", objectURL(k.res, key))
	return writeJSON(w, http.StatusCreated, out[0])
}

func (k *kind) update(w http.ResponseWriter, r *http.Request, c *call) error {
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	p, err := k.s.decodeBody(r, k.kind)
	if err != nil {
		return err
	}
	key := k.key(r, c)
	if p.obj.Name != key.Name || p.obj.Namespace != key.Namespace {
		return invalid([]client.Detail{{Path: "metadata.name", Message: fmt.Sprintf("the body names %s, the path %s", k.noun(p.obj.Key()), k.noun(key))}},
			"the object in the body is not the one in the path")
	}
	if p.rv == 0 {
		return invalid([]client.Detail{{Path: "metadata.resourceVersion", Message: "required: send the resourceVersion you read, so a concurrent change is not overwritten"}},
			"an update needs metadata.resourceVersion")
	}
	ctx := r.Context()
	cur, err := k.load(ctx, key)
	if err != nil {
		return err
	}
	if cur.ResourceVersion != p.rv {
		return Errorf(state.ECONFLICT, "%s has changed since resourceVersion %d (now %d); read it again and reapply your change", k.noun(key), p.rv, cur.ResourceVersion)
	}
	obj := p.obj
	obj.ResourceVersion = cur.ResourceVersion
	obj.Status = cur.Status
	message := fmt.Sprintf("%s updated through the API by %s", key, c.who.Name)
	if cur.Source == state.SourceGit {
		if !force {
			return Errorf(state.ECONFLICT, "%s is managed by Git (%s): change it there, or update it with force=true to override Git until Git changes it again", k.noun(key), gitOrigin(cur))
		}
		if err := sameMetadata(cur, obj); err != nil {
			return err
		}
		obj.Source, obj.Revision, obj.File = state.SourceGit, cur.Revision, cur.File
		gitSpec := cur.Spec
		if cur.Override != nil {
			gitSpec = cur.Override.GitSpec
		}
		if state.JSONEqual(gitSpec, obj.Spec) {
			message = fmt.Sprintf("%s set back to what Git declares by %s; the override ends", key, c.who.Name)
		} else {
			obj.Override = &state.Override{By: c.actor(), At: k.s.now().UTC(), Reason: r.URL.Query().Get("reason"), GitSpec: gitSpec}
			message = fmt.Sprintf("%s overridden through the API by %s; it drifts from Git until Git changes it", key, c.who.Name)
			if obj.Override.Reason != "" {
				message += ": " + obj.Override.Reason
			}
		}
	}
	if k.authorize != nil {
		if err := k.authorize(cur, p, c.who); err != nil {
			return err
		}
	}
	if k.check != nil {
		if err := k.check(ctx, cur, p); err != nil {
			return err
		}
	}
	b := &state.Batch{Actor: c.actor()}
	if k.runs != nil {
		runs, err := k.runs(ctx, cur, p, c.who)
		if err != nil {
			return err
		}
		b.Runs = runs
	}
	b.Put(obj, message)
	res, err := k.s.store.Apply(ctx, b)
	if err != nil {
		return err
	}
	out, err := k.wire(ctx, res.Objects[:1], true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out[0])
}

// sameMetadata refuses label and annotation changes to a Git-managed object:
// the reconciler compares them with Git and would undo them at the next
// sync, so they are Git's to change.
func sameMetadata(cur, obj *state.Object) error {
	var details []client.Detail
	if !maps.Equal(cur.Labels, obj.Labels) {
		details = append(details, client.Detail{Path: "metadata.labels", Message: "labels of a Git-managed object are changed in Git"})
	}
	if !maps.Equal(cur.Annotations, obj.Annotations) {
		details = append(details, client.Detail{Path: "metadata.annotations", Message: "annotations of a Git-managed object are changed in Git"})
	}
	if len(details) > 0 {
		return invalid(details, "%s is managed by Git: an override may change its spec only", cur.Key())
	}
	return nil
}

func (k *kind) delete(w http.ResponseWriter, r *http.Request, c *call) error {
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	rv, _, err := queryUint(r, "resourceVersion")
	if err != nil {
		return err
	}
	key := k.key(r, c)
	ctx := r.Context()
	cur, err := k.load(ctx, key)
	if err != nil {
		return err
	}
	var warnings []string
	if cur.Source == state.SourceGit {
		if !force {
			return Errorf(state.ECONFLICT, "%s is managed by Git (%s): remove it from Git instead. Deleting it here (force=true) lasts only until the next sync re-creates it", k.noun(key), gitOrigin(cur))
		}
		warnings = append(warnings, fmt.Sprintf("%s is declared in Git (%s): the next sync re-creates it unless it is removed from Git", k.noun(key), gitOrigin(cur)))
	}
	if k.beforeDelete != nil {
		if err := k.beforeDelete(ctx, cur); err != nil {
			return err
		}
	}
	message := fmt.Sprintf("%s deleted through the API by %s", key, c.who.Name)
	if reason := r.URL.Query().Get("reason"); reason != "" {
		message += ": " + reason
	}
	b := &state.Batch{Actor: c.actor()}
	b.Delete(key, rv, message)
	if _, err := k.s.store.Apply(ctx, b); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, client.Deleted{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name, Warnings: warnings})
}

// gitOrigin says where Git declares an object.
func gitOrigin(o *state.Object) string {
	parts := []string{}
	if o.File != "" {
		parts = append(parts, o.File)
	}
	if o.Revision != "" {
		parts = append(parts, "at "+o.Revision)
	}
	if len(parts) == 0 {
		return "declared in Git"
	}
	return strings.Join(parts, " ")
}

// objectURL is the API path of an object.
func objectURL(res client.Resource, key state.ObjectKey) string {
	u := "/v1/" + string(res) + "/" + key.Name
	if key.Namespace != "" {
		u += "?namespace=" + key.Namespace
	}
	return u
}

// listAll reads every object of a kind (all namespaces).
func (s *Server) listAll(ctx context.Context, kind string) ([]*state.Object, error) {
	return state.AllObjects(ctx, s.store, state.ObjectQuery{Kind: kind, Limit: maxListLimit})
}
