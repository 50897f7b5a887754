package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
)

// TestHardwareCheckIndexStaysCurrent shows that a hardware written through
// the API is checked against the fleet as it is now, though the check
// looks only at the machines the fleet index finds sharing a MAC or IP:
// machines created, changed and deleted after the index was built (by the
// first write) are seen, through the API and through Git alike.
func TestHardwareCheckIndexStaysCurrent(t *testing.T) {
	s := apitest.MustRunServer(t)
	post := func(body string) response {
		t.Helper()
		return do(t, s, http.MethodPost, "/v1/hardware", "", body)
	}
	clash := func(t *testing.T, r response, details ...client.Detail) {
		t.Helper()
		e := r.apiError(t, http.StatusBadRequest, "invalid")
		require.Equal(t, details, e.Details)
	}
	// The first write builds the index; node-01 is written after.
	r := post(apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	version := r.object(t).Metadata.ResourceVersion

	t.Run("ErrDuplicateMAC", func(t *testing.T) {
		clash(t, post(apitest.HardwareYAML("node-02", "52:54:00:10:00:01", "10.10.1.12")),
			client.Detail{Path: "spec.interfaces[0].dhcp.mac", Line: 12, Column: 14, Object: "Hardware/node-02", Message: "MAC 52:54:00:10:00:01 is already used by hardware node-01"})
	})
	t.Run("ErrDuplicateIP", func(t *testing.T) {
		clash(t, post(apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.11")),
			client.Detail{Path: "spec.interfaces[0].dhcp.ip.address", Line: 13, Column: 23, Object: "Hardware/node-02", Message: "IP address 10.10.1.11 is already used by hardware node-01"})
	})
	t.Run("ErrDuplicateName", func(t *testing.T) {
		e := post(apitest.HardwareYAML("node-01", "52:54:00:10:00:09", "10.10.1.19")).apiError(t, http.StatusConflict, "conflict")
		require.Equal(t, "hardware node-01 already exists (source api); update it with PUT /v1/hardware/node-01", e.Message)
	})
	t.Run("ChangedMACIsFreed", func(t *testing.T) {
		// node-01 moves to a new MAC and IP: its old ones are free, its
		// new ones taken.
		body := strings.Replace(apitest.HardwareYAML("node-01", "52:54:00:10:00:11", "10.10.1.21"), "metadata:", "metadata:\n  resourceVersion: \""+version+"\"", 1)
		r := do(t, s, http.MethodPut, "/v1/hardware/node-01", "", body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		clash(t, post(apitest.HardwareYAML("node-03", "52:54:00:10:00:11", "10.10.1.21")),
			client.Detail{Path: "spec.interfaces[0].dhcp.mac", Line: 12, Column: 14, Object: "Hardware/node-03", Message: "MAC 52:54:00:10:00:11 is already used by hardware node-01"},
			client.Detail{Path: "spec.interfaces[0].dhcp.ip.address", Line: 13, Column: 23, Object: "Hardware/node-03", Message: "IP address 10.10.1.21 is already used by hardware node-01"})
		r = post(apitest.HardwareYAML("node-03", "52:54:00:10:00:01", "10.10.1.11"))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
	t.Run("DeletedMACIsFreed", func(t *testing.T) {
		require.Equal(t, http.StatusOK, do(t, s, http.MethodDelete, "/v1/hardware/node-03", "", "").Status)
		r := post(apitest.HardwareYAML("node-04", "52:54:00:10:00:01", "10.10.1.11"))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
	t.Run("ErrClashWithGit", func(t *testing.T) {
		// Two machines from Git share a MAC (a clash the next sync's
		// validation reports): a third is refused naming the first of
		// them in the fleet's order, as a check of the whole fleet does.
		s.PutGit(t, "hardware/b.yaml", apitest.HardwareYAML("git-b", "52:54:00:10:00:31", "10.10.1.32"))
		s.PutGit(t, "hardware/a.yaml", apitest.HardwareYAML("git-a", "52:54:00:10:00:31", "10.10.1.31"))
		clash(t, post(apitest.HardwareYAML("node-05", "52:54:00:10:00:31", "10.10.1.32")),
			client.Detail{Path: "spec.interfaces[0].dhcp.mac", Line: 12, Column: 14, Object: "Hardware/node-05", Message: "MAC 52:54:00:10:00:31 is already used by hardware git-a"},
			client.Detail{Path: "spec.interfaces[0].dhcp.ip.address", Line: 13, Column: 23, Object: "Hardware/node-05", Message: "IP address 10.10.1.32 is already used by hardware git-b"})
	})
}
