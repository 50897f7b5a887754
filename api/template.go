package api

import (
	"context"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// templateKind serves /v1/templates. A template may be sent as a Template
// object or as a bare Tinkerbell template document (named by its name
// field). A changed template is rendered for every workflow that uses it, as
// a sync would.
func (s *Server) templateKind() *kind {
	k := &kind{s: s, res: client.Templates, kind: state.KindTemplate}
	k.check = func(ctx context.Context, _ *state.Object, p *pushed) error {
		return s.checkTemplate(ctx, p)
	}
	k.beforeDelete = func(ctx context.Context, obj *state.Object) error {
		return s.refuseIfUsed(ctx, obj)
	}
	return k
}
