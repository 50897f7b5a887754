package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestHardwareCRUD(t *testing.T) {
	s := apitest.MustRunServer(t)

	r := do(t, s, http.MethodPost, "/v1/hardware", "", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, "/v1/hardware/node-01", r.Header.Get("Location"))
	created := r.object(t)
	require.Equal(t, "tinkerbell.org/v1alpha1", created.APIVersion)
	require.Equal(t, "Hardware", created.Kind)
	require.Equal(t, "node-01", created.Metadata.Name)
	require.Equal(t, map[string]string{"rack": "r1"}, created.Metadata.Labels)
	require.NotEmpty(t, created.Metadata.ResourceVersion)
	require.Equal(t, "api", created.Status.Source)
	require.Empty(t, created.Status.File)
	require.False(t, created.Status.CreatedAt.IsZero())
	require.Contains(t, string(created.Spec), `"mac":"52:54:00:10:00:01"`)

	t.Run("Get", func(t *testing.T) {
		r := do(t, s, http.MethodGet, "/v1/hardware/node-01", "", "")
		require.Equal(t, http.StatusOK, r.Status)
		got := r.object(t)
		require.Equal(t, created.Metadata, got.Metadata)
		require.JSONEq(t, string(created.Spec), string(got.Spec))
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		e := do(t, s, http.MethodGet, "/v1/hardware/nope", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
		require.Equal(t, "hardware nope not found", e.Message)
		do(t, s, http.MethodGet, "/v1/hardware/node-01?namespace=other", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
		do(t, s, http.MethodPut, "/v1/hardware/nope", "", strings.Replace(apitest.HardwareYAML("nope", "52:54:00:10:00:09", "10.10.1.19"), "metadata:", "metadata:\n  resourceVersion: \"5\"", 1)).
			apiError(t, http.StatusNotFound, state.ENOTFOUND)
		do(t, s, http.MethodDelete, "/v1/hardware/nope", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
	})

	t.Run("ErrAlreadyExists", func(t *testing.T) {
		e := do(t, s, http.MethodPost, "/v1/hardware", "", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")).
			apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Contains(t, e.Message, "hardware node-01 already exists (source api); update it with PUT /v1/hardware/node-01")
	})

	t.Run("Update", func(t *testing.T) {
		body := strings.Replace(apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.21"), "metadata:", "metadata:\n  resourceVersion: \""+created.Metadata.ResourceVersion+"\"", 1)
		r := do(t, s, http.MethodPut, "/v1/hardware/node-01", "", body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		upd := r.object(t)
		require.Contains(t, string(upd.Spec), "10.10.1.21")
		require.NotEqual(t, created.Metadata.ResourceVersion, upd.Metadata.ResourceVersion)
		require.Equal(t, created.Status.CreatedAt, upd.Status.CreatedAt)

		// The same body again carries a resourceVersion that is now stale.
		e := do(t, s, http.MethodPut, "/v1/hardware/node-01", "", body).apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Contains(t, e.Message, "has changed since resourceVersion "+created.Metadata.ResourceVersion)

		e = do(t, s, http.MethodPut, "/v1/hardware/node-01", "", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.21")).
			apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Equal(t, "metadata.resourceVersion", e.Details[0].Path)

		e = do(t, s, http.MethodPut, "/v1/hardware/node-09", "", body).apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Equal(t, "metadata.name", e.Details[0].Path)

		e = do(t, s, http.MethodPut, "/v1/hardware/node-01", "", strings.Replace(body, `resourceVersion: "`, `resourceVersion: "x`, 1)).
			apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Equal(t, "metadata.resourceVersion", e.Details[0].Path)
		require.Equal(t, 4, e.Details[0].Line)
	})

	t.Run("ListPagesAndSelects", func(t *testing.T) {
		for i := 2; i <= 4; i++ {
			n := strconv.Itoa(i)
			body := apitest.HardwareYAML("node-0"+n, "52:54:00:10:00:0"+n, "10.10.1.1"+n)
			if i == 4 {
				body = strings.Replace(body, "rack: r1", "rack: r2", 1)
			}
			require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/hardware", "", body).Status)
		}
		var page client.List
		do(t, s, http.MethodGet, "/v1/hardware?limit=3", "", "").decode(t, &page)
		require.Equal(t, "HardwareList", page.Kind)
		require.Len(t, page.Items, 3)
		require.NotEmpty(t, page.Metadata.Continue)
		var next client.List
		do(t, s, http.MethodGet, "/v1/hardware?limit=3&continue="+page.Metadata.Continue, "", "").decode(t, &next)
		require.Len(t, next.Items, 1)
		require.Equal(t, "node-04", next.Items[0].Metadata.Name)
		require.Empty(t, next.Metadata.Continue)

		var sel client.List
		do(t, s, http.MethodGet, "/v1/hardware?labelSelector=rack%3Dr2", "", "").decode(t, &sel)
		require.Len(t, sel.Items, 1)
		require.Equal(t, "node-04", sel.Items[0].Metadata.Name)

		do(t, s, http.MethodGet, "/v1/hardware?labelSelector=rack+in+(", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
		do(t, s, http.MethodGet, "/v1/hardware?limit=99999", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
		do(t, s, http.MethodGet, "/v1/hardware?limit=x", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
		do(t, s, http.MethodGet, "/v1/hardware?continue=garbage", "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
	})

	t.Run("Delete", func(t *testing.T) {
		r := do(t, s, http.MethodDelete, "/v1/hardware/node-03?resourceVersion=1", "", "")
		r.apiError(t, http.StatusConflict, state.ECONFLICT)
		r = do(t, s, http.MethodDelete, "/v1/hardware/node-03", "", "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var d client.Deleted
		r.decode(t, &d)
		require.Equal(t, client.Deleted{Kind: "Hardware", Name: "node-03"}, d)
		do(t, s, http.MethodGet, "/v1/hardware/node-03", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
	})

	t.Run("EventsNameTheCaller", func(t *testing.T) {
		var created, updated, deleted int
		for _, ev := range events(t, s) {
			require.Equal(t, state.APIUser("anonymous"), ev.Actor, ev.Message)
			switch ev.Type {
			case state.EventCreated:
				created++
			case state.EventUpdated:
				updated++
				require.Equal(t, "Hardware/node-01 updated through the API by anonymous", ev.Message)
			case state.EventDeleted:
				deleted++
			}
		}
		require.Equal(t, []int{4, 1, 1}, []int{created, updated, deleted})
	})
}

func TestHardwareRejectsBadRequests(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithMaxBody(4096))
	require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/hardware", "", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")).Status)
	s.PutGit(t, "bmc/m1.yaml", "apiVersion: bmc.tinkerbell.org/v1alpha1\nkind: Machine\nmetadata: {name: bmc-present}\nspec: {connection: {host: 10.0.0.9, authSecretRef: {name: s1}, insecureTLS: false}}\n")
	good := apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12")

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		message    string
		details    []client.Detail
	}{
		{name: "ErrBadJSON", body: `{"apiVersion": "tinkerbell.org/v1alpha1", "kind": "Hardware",` + "\n" + `"metadata": {"name": }}`,
			status: 400, code: "invalid", message: "the request body is not valid JSON: invalid character '}' looking for beginning of value (line 2, column 22)",
			details: []client.Detail{{Line: 2, Column: 22, Message: "invalid character '}' looking for beginning of value"}}},
		{name: "ErrTruncatedJSON", body: `{"kind": "Hardware"`, status: 400, code: "invalid", message: "the request body is not valid JSON: unexpected end of JSON input (line 1, column 20)",
			details: []client.Detail{{Line: 1, Column: 20, Message: "unexpected end of JSON input"}}},
		{name: "ErrUnknownField", body: strings.Replace(good, "  disks:", "  diskz:", 1), status: 400, code: "invalid",
			message: "the Hardware in the request body is not valid: 1 problem",
			details: []client.Detail{{Path: "spec.diskz", Line: 8, Column: 3, Object: "Hardware/node-02", Message: `unknown field "diskz" (did you mean "disks"?)`}}},
		{name: "ErrUnknownFieldJSON", body: `{"apiVersion":"tinkerbell.org/v1alpha1","kind":"Hardware","metadata":{"name":"n9"},"spec":{"bogus":1}}`, status: 400, code: "invalid",
			message: "the Hardware in the request body is not valid: 1 problem"},
		{name: "ErrBadMAC", body: strings.Replace(good, `mac: "52:54:00:10:00:02"`, `mac: "zz:11"`, 1), status: 400, code: "invalid",
			message: "the Hardware in the request body is not valid: 1 problem",
			details: []client.Detail{{Path: "spec.interfaces[0].dhcp.mac", Line: 12, Column: 14, Object: "Hardware/node-02", Message: `"zz:11" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)`}}},
		{name: "ErrWrongKind", body: apitest.WorkflowYAML("wf", "t", "h", "52:54:00:10:00:02"), status: 400, code: "invalid",
			message: "this collection holds Hardware objects; the request body is a Workflow"},
		{name: "ErrTwoObjects", body: good + "---\n" + apitest.HardwareYAML("node-03", "52:54:00:10:00:03", "10.10.1.13"), status: 400, code: "invalid",
			message: "the request body holds 2 objects; send one per request"},
		{name: "ErrEmpty", body: "", status: 400, code: "invalid", message: "the request body is empty; send a Hardware object as JSON or YAML"},
		{name: "ErrTooLarge", body: good + "#" + strings.Repeat("x", 5000) + "\n", status: 413, code: "too_large",
			message: "the request body is larger than the limit of 4 KiB"},
		{name: "ErrDuplicateMACAndIP", body: apitest.HardwareYAML("node-02", "52:54:00:10:00:01", "10.10.1.11"), status: 400, code: "invalid",
			message: "hardware node-02 clashes with the fleet: 2 problems",
			details: []client.Detail{
				{Path: "spec.interfaces[0].dhcp.mac", Line: 12, Column: 14, Object: "Hardware/node-02", Message: "MAC 52:54:00:10:00:01 is already used by hardware node-01"},
				{Path: "spec.interfaces[0].dhcp.ip.address", Line: 13, Column: 23, Object: "Hardware/node-02", Message: "IP address 10.10.1.11 is already used by hardware node-01"},
			}},
		{name: "ErrMissingMachine", body: strings.Replace(good, "  bmc: {address: 10.10.0.11, protocol: ipmi, credentialsRef: bmc-node-02}", "  bmcRef: {kind: Machine, name: bmc-absent}", 1),
			status: 400, code: "invalid", message: "hardware node-02 clashes with the fleet: 1 problem",
			details: []client.Detail{{Path: "spec.bmcRef.name", Line: 7, Column: 33, Object: "Hardware/node-02", Message: `bmcRef names Machine "bmc-absent", which is not declared`}}},
		// Git refuses one IP on two interfaces of one hardware; the API
		// checks with the same code.
		{name: "ErrIPTwiceInOneHardware", body: good + "    - dhcp: {mac: \"52:54:00:10:00:12\", ip: {address: 10.10.1.12, netmask: 255.255.255.0}}\n",
			status: 400, code: "invalid", message: "hardware node-02 clashes with the fleet: 1 problem",
			details: []client.Detail{{Path: "spec.interfaces[1].dhcp.ip.address", Line: 15, Column: 54, Object: "Hardware/node-02", Message: "IP address 10.10.1.12 appears twice in this hardware (interfaces[0] has it)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := do(t, s, http.MethodPost, "/v1/hardware", "", tc.body).apiError(t, tc.status, tc.code)
			require.Equal(t, tc.message, e.Message)
			if tc.details != nil {
				require.Equal(t, tc.details, e.Details)
			}
		})
	}

	t.Run("OKMachineExists", func(t *testing.T) {
		body := strings.Replace(good, "  bmc: {address: 10.10.0.11, protocol: ipmi, credentialsRef: bmc-node-02}", "  bmcRef: {kind: Machine, name: bmc-present}", 1)
		require.Equal(t, http.StatusCreated, do(t, s, http.MethodPost, "/v1/hardware", "", body).Status)
	})
	t.Run("OKJSON", func(t *testing.T) {
		body := `{"apiVersion":"tinkerbell.org/v1alpha1","kind":"Hardware","metadata":{"name":"node-05"},"spec":{"interfaces":[{"dhcp":{"mac":"52:54:00:10:00:05"}}]}}`
		r := do(t, s, http.MethodPost, "/v1/hardware", "", body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
	t.Run("NothingWrittenOnError", func(t *testing.T) {
		page, err := s.Store.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Len(t, page.Objects, 3) // node-01, the bmcRef one, node-05
	})
}

func TestGitManagedHardware(t *testing.T) {
	s := apitest.MustRunServer(t)
	s.PutGit(t, "hardware/node-01.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))
	cur := do(t, s, http.MethodGet, "/v1/hardware/node-01", "", "").object(t)
	require.Equal(t, "git", cur.Status.Source)
	require.Equal(t, "hardware/node-01.yaml", cur.Status.File)
	require.Equal(t, apitest.Revision, cur.Status.Revision)

	withRV := func(body, rv string) string {
		return strings.Replace(body, "metadata:", "metadata:\n  resourceVersion: \""+rv+"\"", 1)
	}
	changed := withRV(apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.99"), cur.Metadata.ResourceVersion)

	t.Run("ErrNeedsForce", func(t *testing.T) {
		e := do(t, s, http.MethodPut, "/v1/hardware/node-01", "", changed).apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Equal(t, "hardware node-01 is managed by Git (hardware/node-01.yaml at "+apitest.Revision+"): change it there, or update it with force=true to override Git until Git changes it again", e.Message)
	})
	t.Run("ErrLabels", func(t *testing.T) {
		e := do(t, s, http.MethodPut, "/v1/hardware/node-01?force=true", "", strings.Replace(changed, "rack: r1", "rack: r9", 1)).apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Equal(t, "metadata.labels", e.Details[0].Path)
	})
	t.Run("ErrBadForce", func(t *testing.T) {
		do(t, s, http.MethodPut, "/v1/hardware/node-01?force=maybe", "", changed).apiError(t, http.StatusBadRequest, state.EINVALID)
	})

	var overridden client.Object
	t.Run("Override", func(t *testing.T) {
		r := do(t, s, http.MethodPut, "/v1/hardware/node-01?force=true&reason=NIC+swapped", "", changed)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		overridden = r.object(t)
		require.Equal(t, "git", overridden.Status.Source)
		require.Equal(t, "hardware/node-01.yaml", overridden.Status.File)
		require.NotNil(t, overridden.Status.Override)
		require.Equal(t, "api:anonymous", overridden.Status.Override.By)
		require.Equal(t, "NIC swapped", overridden.Status.Override.Reason)
		require.JSONEq(t, string(cur.Spec), string(overridden.Status.Override.GitSpec))
		require.Equal(t, []string{"spec.interfaces[0].dhcp.ip.address"}, overridden.Status.Drift)

		var st client.Status
		do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
		require.Len(t, st.Drift, 1)
		require.Equal(t, "node-01", st.Drift[0].Name)
		require.Equal(t, "api:anonymous", st.Drift[0].By)
		require.Equal(t, "NIC swapped", st.Drift[0].Reason)
		require.Equal(t, []string{"spec.interfaces[0].dhcp.ip.address"}, st.Drift[0].Fields)

		evs := events(t, s)
		require.Equal(t, "Hardware/node-01 overridden through the API by anonymous; it drifts from Git until Git changes it: NIC swapped", evs[len(evs)-1].Message)
	})

	t.Run("SecondOverrideKeepsGitSpec", func(t *testing.T) {
		again := withRV(apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.98"), overridden.Metadata.ResourceVersion)
		r := do(t, s, http.MethodPut, "/v1/hardware/node-01?force=true", "", again)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		o := r.object(t)
		require.JSONEq(t, string(cur.Spec), string(o.Status.Override.GitSpec))
		overridden = o
	})

	t.Run("BackToGitEndsOverride", func(t *testing.T) {
		back := withRV(apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"), overridden.Metadata.ResourceVersion)
		r := do(t, s, http.MethodPut, "/v1/hardware/node-01?force=true", "", back)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Nil(t, r.object(t).Status.Override)
		var st client.Status
		do(t, s, http.MethodGet, "/v1/status", "", "").decode(t, &st)
		require.Empty(t, st.Drift)
	})

	t.Run("Delete", func(t *testing.T) {
		e := do(t, s, http.MethodDelete, "/v1/hardware/node-01", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Contains(t, e.Message, "managed by Git (hardware/node-01.yaml at "+apitest.Revision+"): remove it from Git instead")
		r := do(t, s, http.MethodDelete, "/v1/hardware/node-01?force=true", "", "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var d client.Deleted
		r.decode(t, &d)
		require.Equal(t, []string{"hardware node-01 is declared in Git (hardware/node-01.yaml at " + apitest.Revision + "): the next sync re-creates it unless it is removed from Git"}, d.Warnings)
	})
}

func TestRouterAnswersInTheErrorShape(t *testing.T) {
	s := apitest.MustRunServer(t)
	e := do(t, s, http.MethodGet, "/v1/nope", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
	require.Equal(t, "no such API path: /v1/nope (the API lives under /v1)", e.Message)
	e = do(t, s, http.MethodPatch, "/v1/hardware", "", "").apiError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Equal(t, "PATCH is not allowed on /v1/hardware", e.Message)
	do(t, s, http.MethodGet, "/v1/hardware/", "", "").apiError(t, http.StatusNotFound, state.ENOTFOUND)
}

func TestInternalErrorsShowNoDetail(t *testing.T) {
	s := apitest.MustRunServer(t)
	require.NoError(t, s.Store.Close())
	r := do(t, s, http.MethodGet, "/v1/hardware", "", "")
	e := r.apiError(t, http.StatusInternalServerError, state.EINTERNAL)
	require.Equal(t, "internal error; the server's log has the details", e.Message)
	require.NotContains(t, string(r.Body), "/tmp")
	require.Contains(t, s.Log.String(), "closed", "the log has what the response leaves out")
	require.NotEmpty(t, r.Header.Get("X-Request-Id"))
	require.Contains(t, s.Log.String(), r.Header.Get("X-Request-Id"))
}

// withoutBMC drops the bmc block of apitest.HardwareYAML.
func withoutBMC(doc string) string {
	return strings.Replace(doc, "  bmc: {address: 10.10.0.11, protocol: ipmi, credentialsRef: bmc-", "  # no bmc: ", 1)
}

// TestBMCFieldsNeedAdmin: whoever sets a Hardware's bmc block or bmcRef
// decides where a BMC password is sent, so an operator may create and
// change hardware, but only an admin may give it a BMC or change its
// address, credential, TLS check or Machine.
func TestBMCFieldsNeedAdmin(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	admin, operator := s.Tokens["admin"], s.Tokens["operator"]
	node01 := apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")
	r := do(t, s, http.MethodPost, "/v1/hardware", admin, node01)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	rv := r.object(t).Metadata.ResourceVersion

	e := do(t, s, http.MethodPost, "/v1/hardware", operator, apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12")).
		apiError(t, http.StatusForbidden, "forbidden")
	require.Equal(t, "token operator has role operator; only an admin may create with spec.bmc hardware node-02: "+
		"these fields say where the server sends a BMC credential (see SECURITY.md)", e.Message)
	r = do(t, s, http.MethodPost, "/v1/hardware", operator, withoutBMC(apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12")))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

	put := func(token, doc string) response {
		return do(t, s, http.MethodPut, "/v1/hardware/node-01", token, strings.Replace(doc, "metadata:", "metadata:\n  resourceVersion: \""+rv+"\"", 1))
	}
	for name, doc := range map[string]string{
		"Address":        strings.Replace(node01, "address: 10.10.0.11", "address: 203.0.113.66", 1),
		"CredentialsRef": strings.Replace(node01, "credentialsRef: bmc-node-01", "credentialsRef: bmc-node-02", 1),
		"InsecureTLS":    strings.Replace(node01, "protocol: ipmi", "protocol: redfish, insecureTLS: true", 1),
		"Removed":        withoutBMC(node01),
		"BMCRef":         strings.Replace(withoutBMC(node01), "spec:", "spec:\n  bmcRef: {apiGroup: bmc.tinkerbell.org, kind: Machine, name: evil}", 1),
	} {
		t.Run("Operator"+name, func(t *testing.T) {
			put(operator, doc).apiError(t, http.StatusForbidden, "forbidden")
		})
	}
	r = put(operator, strings.Replace(node01, "rack: r1", "rack: r2", 1))
	require.Equal(t, http.StatusOK, r.Status, "an operator changes what is not the BMC: %s", r.Body)
	rv = r.object(t).Metadata.ResourceVersion
	r = put(admin, strings.Replace(node01, "address: 10.10.0.11", "address: 10.10.0.12", 1))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
}
