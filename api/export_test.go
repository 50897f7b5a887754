package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// ListUncached answers a list of res as the server did before it kept
// list items (listcache.go) and shared the store's decodings: every object
// and run decoded afresh, the page encoded whole. Tests compare the
// server's answers with it.
func (s *Server) ListUncached(ctx context.Context, res client.Resource, q state.ObjectQuery) ([]byte, error) {
	k := map[client.Resource]*kind{client.Hardware: s.hardwareKind(), client.Templates: s.templateKind(), client.Workflows: s.workflowKind()}[res]
	q.Kind = k.kind
	page, err := s.store.ListObjects(ctx, q)
	if err != nil {
		return nil, err
	}
	items, err := k.wire(ctx, page.Objects, false)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(client.List{APIVersion: schema.APIVersion, Kind: k.kind + "List", Metadata: client.ListMeta{Continue: page.Continue}, Items: items})
	return append(b, '\n'), err
}

// CheckBoth runs the set-wide checks of an object of kind sent as body,
// as a create would, twice: against the fleet index, as the server does,
// and against the whole store, read as before the index answered them.
func (s *Server) CheckBoth(ctx context.Context, kind string, body string) (indexed, whole error, err error) {
	p, err := s.decodeBody(httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(body)), kind)
	if err != nil {
		return nil, nil, err
	}
	check := map[string]func(context.Context, *pushed, fleetReader) error{
		state.KindWorkflow: s.checkWorkflowIn,
		state.KindTemplate: s.checkTemplateIn,
	}[kind]
	return check(ctx, p, indexedFleet{s}), check(ctx, p, storeFleet{s}), nil
}

// DeleteCheckBoth runs the check of a deletion of the object with key (are
// workflows using it?) against the fleet index and against the whole
// store.
func (s *Server) DeleteCheckBoth(ctx context.Context, key state.ObjectKey) (indexed, whole error, err error) {
	obj, err := s.store.GetObject(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	return s.refuseIfUsedIn(ctx, obj, indexedFleet{s}), s.refuseIfUsedIn(ctx, obj, storeFleet{s}), nil
}

// storeFleet reads the whole store for every check, as the server did
// before its fleet index answered them: every machine, every workflow.
type storeFleet struct{ s *Server }

func (f storeFleet) hardware(ctx context.Context, whole []*schema.Hardware, _ []string, _ bool) ([]*schema.Hardware, error) {
	all, err := f.s.listAll(ctx, state.KindHardware)
	if err != nil {
		return nil, err
	}
	out := make([]*schema.Hardware, 0, len(all))
	for _, o := range all {
		i := slices.IndexFunc(whole, func(h *schema.Hardware) bool {
			return h.Metadata.Namespace == o.Namespace && h.Metadata.Name == o.Name
		})
		if i >= 0 {
			out = append(out, whole[i])
			continue
		}
		out = append(out, &schema.Hardware{
			Metadata: schema.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
			Spec:     schema.HardwareSpec{Interfaces: interfaces(o)},
		})
	}
	return out, nil
}

func (f storeFleet) workflows(ctx context.Context, ref state.ObjectKey, macs []string) ([]state.ObjectKey, error) {
	all, err := f.s.listAll(ctx, state.KindWorkflow)
	if err != nil {
		return nil, err
	}
	var out []state.ObjectKey
	for _, wf := range all {
		tmpl, hw := workflowRefs(wf)
		switch {
		case wf.Namespace == ref.Namespace && ((ref.Kind == state.KindTemplate && tmpl == ref.Name) || (ref.Kind == state.KindHardware && hw == ref.Name)):
			out = append(out, wf.Key())
		case len(macs) > 0:
			for _, mac := range hardwareMapMACs(wf) {
				if slices.Contains(macs, mac) {
					out = append(out, wf.Key())
					break
				}
			}
		}
	}
	return out, nil
}

// IndexReloads is how many times the fleet index was built from a full
// listing.
func (s *Server) IndexReloads() int {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	return s.index.reloads
}

// PlansRunning is how many plan slots are held now.
func (s *Server) PlansRunning() int { return len(s.plans) }
