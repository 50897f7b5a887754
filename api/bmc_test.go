package api_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// recordingBMC answers overrides and records them; the real BMC path (bmclib
// against ipmi_sim) is tested in cmd/tink-server.
type recordingBMC struct {
	mu    sync.Mutex
	calls []string
}

func (b *recordingBMC) Power(_ context.Context, actor state.Actor, hw state.ObjectKey, action string) (*client.BMCResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if action == "sideways" {
		return nil, state.Errorf(state.EINVALID, "unknown power action %q", action)
	}
	b.calls = append(b.calls, string(actor)+" power "+action+" "+hw.Name)
	return &client.BMCResult{Hardware: hw.Name, Action: "power " + action, Power: "on", Provider: "fake", Seconds: 0.1}, nil
}

func (b *recordingBMC) BootDevice(_ context.Context, actor state.Actor, hw state.ObjectKey, device string, persistent bool) (*client.BMCResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := "once"
	if persistent {
		p = "persistent"
	}
	b.calls = append(b.calls, string(actor)+" bootdev "+device+" "+p+" "+hw.Name)
	return &client.BMCResult{Hardware: hw.Name, Action: "bootdev " + device, Provider: "fake"}, nil
}

func (b *recordingBMC) PowerStatus(hw state.ObjectKey) (*client.PowerStatus, bool) {
	if hw.Name != "node-01" {
		return nil, false
	}
	return &client.PowerStatus{State: "off", CheckedAt: time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)}, true
}

// TestBMCOverrides: the power and boot-device routes reach the BMC for a
// known machine with the caller as actor, refuse unknown machines and
// malformed bodies, and hardware status shows the power state.
func TestBMCOverrides(t *testing.T) {
	b := &recordingBMC{}
	s := apitest.MustRunServer(t, apitest.WithTokens(), apitest.WithBMC(b))
	seedFleet(t, s, s.Tokens["admin"])
	op := s.Tokens["operator"]

	r := do(t, s, http.MethodPost, "/v1/hardware/node-01/power", op, `{"action":"cycle"}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var res client.BMCResult
	r.decode(t, &res)
	require.Equal(t, client.BMCResult{Hardware: "node-01", Action: "power cycle", Power: "on", Provider: "fake", Seconds: 0.1}, res)

	r = do(t, s, http.MethodPost, "/v1/hardware/node-02/bootdevice", op, `{"device":"pxe","persistent":true}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, []string{"api:operator power cycle node-01", "api:operator bootdev pxe persistent node-02"}, b.calls)

	e := do(t, s, http.MethodPost, "/v1/hardware/node-99/power", op, `{"action":"on"}`).apiError(t, http.StatusNotFound, state.ENOTFOUND)
	require.Equal(t, "hardware node-99 not found", e.Message)
	e = do(t, s, http.MethodPost, "/v1/hardware/node-01/power", op, `{"action":"on","force":true}`).apiError(t, http.StatusBadRequest, state.EINVALID)
	require.Contains(t, e.Message, `unknown field "force"`)
	e = do(t, s, http.MethodPost, "/v1/hardware/node-01/power", op, `{"action":"sideways"}`).apiError(t, http.StatusBadRequest, state.EINVALID)
	require.Contains(t, e.Message, `unknown power action "sideways"`)
	do(t, s, http.MethodPost, "/v1/hardware/node-01/power", s.Tokens["viewer"], `{"action":"on"}`).apiError(t, http.StatusForbidden, "forbidden")
	require.Len(t, b.calls, 2, "refused requests never reach the BMC")

	var hw client.Object
	do(t, s, http.MethodGet, "/v1/hardware/node-01", op, "").decode(t, &hw)
	require.Equal(t, &client.PowerStatus{State: "off", CheckedAt: time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)}, hw.Status.Power)
	var other client.Object
	do(t, s, http.MethodGet, "/v1/hardware/node-02", op, "").decode(t, &other)
	require.Nil(t, other.Status.Power)
}

// TestBMCOverridesWithoutBMC: a server that drives no BMCs says so.
func TestBMCOverridesWithoutBMC(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	e := do(t, s, http.MethodPost, "/v1/hardware/node-01/power", "", `{"action":"on"}`).apiError(t, http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, "this server drives no BMCs", e.Message)
}
