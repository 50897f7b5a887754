package bmc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// StoreConnection is the server's Config.Connection: a hardware's inline bmc
// block, or the Rufio Machine its bmcRef names, read from store on every
// call, so a Machine changed in Git is used by the next BMC call without a
// restart.
func StoreConnection(store state.Store) func(ctx context.Context, hw *schema.Hardware) (*schema.BMCConnection, error) {
	return func(ctx context.Context, hw *schema.Hardware) (*schema.BMCConnection, error) {
		ref := hw.Spec.BMCRef
		if hw.Spec.BMC != nil || ref == nil {
			return InlineConnection(ctx, hw)
		}
		key := state.ObjectKey{Kind: state.KindMachine, Namespace: hw.Metadata.Namespace, Name: ref.Name}
		o, err := store.GetObject(ctx, key)
		if state.ErrorCode(err) == state.ENOTFOUND {
			return nil, state.Errorf(state.EINVALID, "hardware %s: bmcRef names Machine %s, which does not exist", hw.Metadata.Name, ref.Name)
		}
		if err != nil {
			return nil, err
		}
		m, err := storedMachine(o)
		if err != nil {
			return nil, err
		}
		conn, _ := (&schema.Set{Machines: []*schema.Machine{m}}).BMC(hw)
		return conn, nil
	}
}

// storedMachine turns a stored Machine into its schema type, as
// reconciler.FromState does for every kind; that function is out of reach
// here, since package reconciler imports this one (see the package doc).
func storedMachine(o *state.Object) (*schema.Machine, error) {
	if o.Kind != state.KindMachine {
		// A store holding the wrong kind under a key is the server's fault.
		return nil, state.Errorf(state.EINTERNAL, "object %s is not a %T", o.Key(), (*schema.Machine)(nil))
	}
	m := &schema.Machine{
		TypeMeta: schema.TypeMeta{APIVersion: schema.BMCAPIVersion, Kind: o.Kind},
		Metadata: schema.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, Annotations: o.Annotations},
	}
	if len(o.Spec) > 0 {
		if err := json.Unmarshal(o.Spec, &m.Spec); err != nil {
			return nil, fmt.Errorf("%s: decode spec: %w", o.Key(), err)
		}
	}
	return m, nil
}
