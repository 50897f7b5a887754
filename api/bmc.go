package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// BMC runs power and boot-device overrides on a machine's BMC and knows
// the power state it last read. The server wires reconciler/bmc's
// Controller; errors carry state codes (EINVALID for a bad action or a
// hardware without a BMC or secret, EUNAVAILABLE for a BMC that does not
// answer) and never a password.
type BMC interface {
	Power(ctx context.Context, actor state.Actor, hw state.ObjectKey, action string) (*client.BMCResult, error)
	BootDevice(ctx context.Context, actor state.Actor, hw state.ObjectKey, device string, persistent bool) (*client.BMCResult, error)
	// PowerStatus is the last power state read for hw; false when none was.
	PowerStatus(hw state.ObjectKey) (*client.PowerStatus, bool)
}

func (s *Server) handlePower(w http.ResponseWriter, r *http.Request, c *call) error {
	var req client.PowerRequest
	key, err := s.bmcRequest(r, c, &req)
	if err != nil {
		return err
	}
	res, err := s.bmc.Power(r.Context(), c.actor(), key, req.Action)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleBootDevice(w http.ResponseWriter, r *http.Request, c *call) error {
	var req client.BootDeviceRequest
	key, err := s.bmcRequest(r, c, &req)
	if err != nil {
		return err
	}
	res, err := s.bmc.BootDevice(r.Context(), c.actor(), key, req.Device, req.Persistent)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// bmcRequest checks that the server drives BMCs and the hardware exists,
// and decodes the request body strictly into v.
func (s *Server) bmcRequest(r *http.Request, c *call, v any) (state.ObjectKey, error) {
	key := state.ObjectKey{Kind: state.KindHardware, Namespace: r.URL.Query().Get("namespace"), Name: c.params.ByName("name")}
	if s.bmc == nil {
		return key, Errorf(EUNAVAILABLE, "this server drives no BMCs")
	}
	if _, err := s.store.GetObject(r.Context(), key); state.ErrorCode(err) == state.ENOTFOUND {
		return key, Errorf(state.ENOTFOUND, "hardware %s not found", key.Name)
	} else if err != nil {
		return key, err
	}
	body, err := s.readBody(r)
	if err != nil {
		return key, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return key, Errorf(state.EINVALID, "request body: %v", err)
	}
	return key, nil
}
