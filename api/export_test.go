package api

import (
	"context"
	"encoding/json"

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
