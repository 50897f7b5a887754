package main

import (
	"context"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// decode turns a stored object into its schema type T, or says it is not
// one (a store holding the wrong kind under a key is the server's fault).
func decode[T schema.Object](o *state.Object) (T, error) {
	obj, err := reconciler.FromState(o)
	if err != nil {
		var zero T
		return zero, err
	}
	t, ok := obj.(T)
	if !ok {
		var zero T
		return zero, state.Errorf(state.EINTERNAL, "object %s is not a %T", o.Key(), zero)
	}
	return t, nil
}

// bmcAPI serves the API's power and boot-device overrides with the
// Controller, reading the hardware from the store.
type bmcAPI struct {
	ctrl  *bmc.Controller
	store state.Store
}

func (b bmcAPI) hardware(ctx context.Context, key state.ObjectKey) (*schema.Hardware, error) {
	o, err := b.store.GetObject(ctx, key)
	if err != nil {
		return nil, err
	}
	return decode[*schema.Hardware](o)
}

// Power implements api.BMC.
func (b bmcAPI) Power(ctx context.Context, actor state.Actor, key state.ObjectKey, action string) (*client.BMCResult, error) {
	a, err := bmc.ParsePowerAction(action)
	if err != nil {
		return nil, err
	}
	hw, err := b.hardware(ctx, key)
	if err != nil {
		return nil, err
	}
	res, err := b.ctrl.Power(ctx, hw, a, actor)
	if err != nil {
		return nil, bmcError(err)
	}
	return bmcResult(key.Name, "power "+string(a), res), nil
}

// BootDevice implements api.BMC.
func (b bmcAPI) BootDevice(ctx context.Context, actor state.Actor, key state.ObjectKey, device string, persistent bool) (*client.BMCResult, error) {
	d, err := bmc.ParseBootDevice(device)
	if err != nil {
		return nil, err
	}
	hw, err := b.hardware(ctx, key)
	if err != nil {
		return nil, err
	}
	res, err := b.ctrl.BootDevice(ctx, hw, d, persistent, actor)
	if err != nil {
		return nil, bmcError(err)
	}
	what := "bootdev " + string(d) + " once"
	if persistent {
		what = "bootdev " + string(d) + " persistent"
	}
	return bmcResult(key.Name, what, res), nil
}

// PowerStatus implements api.BMC.
func (b bmcAPI) PowerStatus(key state.ObjectKey) (*client.PowerStatus, bool) {
	st := b.ctrl.Status(key.Namespace, key.Name)
	if st.Checked.IsZero() && st.Error == "" {
		return nil, false
	}
	return &client.PowerStatus{State: string(st.Power), CheckedAt: st.Checked, Error: st.Error}, true
}

func bmcResult(hw, action string, r bmc.Result) *client.BMCResult {
	return &client.BMCResult{Hardware: hw, Action: action, Power: string(r.Power), Provider: r.Provider, Seconds: r.Took.Seconds(), Attempts: r.Attempts}
}

// bmcError gives a BMC failure the code an API caller can act on: a BMC
// that does not answer (or refuses the credentials) is unavailable, with
// its message (already free of the password), not an anonymous internal
// error; a missing secret is the hardware's configuration at fault.
func bmcError(err error) error {
	switch state.ErrorCode(err) {
	case state.EINTERNAL:
		return state.Errorf(state.EUNAVAILABLE, "%s", state.ErrorMessage(err))
	case state.ENOTFOUND:
		return state.Errorf(state.EINVALID, "%s", state.ErrorMessage(err))
	}
	return err
}

// bmcHardware lists every hardware that declares a BMC, for the power poll.
func bmcHardware(store state.Store) func(ctx context.Context) ([]*schema.Hardware, error) {
	return func(ctx context.Context) ([]*schema.Hardware, error) {
		var out []*schema.Hardware
		q := state.ObjectQuery{Kind: state.KindHardware, Limit: 1000}
		for {
			page, err := store.ListObjects(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, o := range page.Objects {
				hw, err := decode[*schema.Hardware](o)
				if err != nil {
					return nil, err
				}
				if hw.Spec.BMC != nil || hw.Spec.BMCRef != nil {
					out = append(out, hw)
				}
			}
			if page.Continue == "" {
				return out, nil
			}
			q.Continue = page.Continue
		}
	}
}
