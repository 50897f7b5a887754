package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/state"
)

func TestLoadAuthFile(t *testing.T) {
	hash := api.HashToken("s3cret")
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "tokens.yaml")
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}

	t.Run("OK", func(t *testing.T) {
		a, err := api.LoadAuthFile(write(t, "- name: alice\n  role: admin\n  sha256: "+hash+"\n"+
			"- name: n1\n  role: worker\n  hardware: node-01\n  sha256: "+strings.ToUpper(api.HashToken("w"))+"\n"))
		require.NoError(t, err)
		p, ok := a.Authenticate("s3cret")
		require.True(t, ok)
		require.Equal(t, api.Principal{Name: "alice", Role: api.RoleAdmin}, *p)
		require.Equal(t, state.APIUser("alice"), p.Actor())
		p, ok = a.Authenticate("w")
		require.True(t, ok)
		require.Equal(t, state.Worker("node-01"), p.Actor())
		_, ok = a.Authenticate("s3cre")
		require.False(t, ok)
		_, ok = a.Authenticate("")
		require.False(t, ok)
	})

	for _, tc := range []struct{ name, text, want string }{
		{"ErrEmpty", "", "no tokens"},
		{"ErrNotAList", "name: alice\n", "want a list of {name, role, sha256}"},
		{"ErrUnknownField", "- name: a\n  role: admin\n  token: s3cret\n  sha256: " + hash + "\n", "field token not found"},
		{"ErrRole", "- name: a\n  role: root\n  sha256: " + hash + "\n", `token 1 (a): role "root" is not one of admin, operator, viewer, worker`},
		{"ErrNoName", "- role: admin\n  sha256: " + hash + "\n", "token 1: name is empty"},
		{"ErrHash", "- name: a\n  role: admin\n  sha256: s3cret\n", "token 1 (a): sha256 must be 64 hex digits"},
		{"ErrWorkerHardware", "- name: a\n  role: worker\n  sha256: " + hash + "\n", "a worker token needs the hardware it runs on"},
		{"ErrWorkerHardwareEmptyNamespace", "- name: a\n  role: worker\n  hardware: /node-01\n  sha256: " + hash + "\n", `hardware "/node-01": want <name> or <namespace>/<name>`},
		{"ErrWorkerHardwareTwoSlashes", "- name: a\n  role: worker\n  hardware: a/b/c\n  sha256: " + hash + "\n", `hardware "a/b/c"`},
		{"ErrAdminHardware", "- name: a\n  role: admin\n  hardware: n\n  sha256: " + hash + "\n", "only worker tokens are bound to hardware"},
		{"ErrDuplicateName", "- name: a\n  role: admin\n  sha256: " + hash + "\n- name: a\n  role: viewer\n  sha256: " + api.HashToken("x") + "\n", "token 2 (a): name is already used by token 1"},
		{"ErrDuplicateToken", "- name: a\n  role: admin\n  sha256: " + hash + "\n- name: b\n  role: viewer\n  sha256: " + hash + "\n", "token 2 (b): has the same token as token 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, tc.text)
			_, err := api.LoadAuthFile(p)
			require.Error(t, err)
			require.Equal(t, state.EINVALID, state.ErrorCode(err))
			require.Contains(t, err.Error(), p)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	t.Run("ErrMissing", func(t *testing.T) {
		_, err := api.LoadAuthFile(filepath.Join(t.TempDir(), "nope.yaml"))
		require.ErrorContains(t, err, "nope.yaml")
	})
}

func TestCheckListen(t *testing.T) {
	a, err := api.NewAuth([]api.Token{{Name: "a", Role: api.RoleAdmin, SHA256: api.HashToken("x")}})
	require.NoError(t, err)
	for _, tc := range []struct {
		addr     string
		auth     *api.Auth
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:42113", nil, false, true},
		{"127.0.0.2:0", nil, false, true},
		{"[::1]:42113", nil, false, true},
		{"localhost:42113", nil, false, true},
		{":42113", nil, false, false},
		{"0.0.0.0:42113", nil, false, false},
		{"[::]:42113", nil, false, false},
		{"10.0.0.5:42113", nil, false, false},
		{"tink.example.com:42113", nil, false, false},
		{"0.0.0.0:42113", a, false, true},
		{"0.0.0.0:42113", nil, true, true},
	} {
		err := api.CheckListen(tc.addr, tc.auth, tc.insecure)
		if tc.ok {
			require.NoError(t, err, tc.addr)
			continue
		}
		require.Error(t, err, tc.addr)
		require.Contains(t, err.Error(), "refusing to listen on "+tc.addr+" without API tokens")
		require.Contains(t, err.Error(), "--auth-file")
		require.Contains(t, err.Error(), "--insecure")
	}
	require.ErrorContains(t, api.CheckListen("nonsense", nil, false), `listen address "nonsense"`)
}

func TestPrincipalPermits(t *testing.T) {
	worker := &api.Principal{Name: "w1", Role: api.RoleWorker, Hardware: "node-01"}
	require.True(t, worker.Permits(api.RoleWorker, "node-01"))
	require.False(t, worker.Permits(api.RoleWorker, "node-02"), "a worker token for node-01 cannot act for node-02")
	require.False(t, worker.Permits(api.RoleWorker, "other/node-01"), "node-01 of another namespace is another machine")
	namespaced := &api.Principal{Name: "w2", Role: api.RoleWorker, Hardware: "other/node-01"}
	require.True(t, namespaced.Permits(api.RoleWorker, "other/node-01"))
	require.False(t, namespaced.Permits(api.RoleWorker, "node-01"))
	for _, need := range []api.Role{api.RoleViewer, api.RoleOperator, api.RoleAdmin} {
		require.False(t, worker.Permits(need, ""), need)
	}
	require.True(t, worker.Permits(api.RolePublic, ""))
	admin := &api.Principal{Name: "a", Role: api.RoleAdmin}
	require.True(t, admin.Permits(api.RoleWorker, "node-02"))
	op := &api.Principal{Name: "o", Role: api.RoleOperator}
	require.False(t, op.Permits(api.RoleWorker, "node-01"))
	require.False(t, op.Permits(api.RoleAdmin, ""))
	require.True(t, op.Permits(api.RoleViewer, ""))
}

// TestRolesAgainstEveryRoute sends every route with every kind of
// credential and checks the answer against the route table's role: each
// role against each route, a missing token, a wrong one, a worker token.
func TestRolesAgainstEveryRoute(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	seedFleet(t, s, s.Tokens["admin"])

	bodies := map[string]string{
		// Without a BMC: only an admin may set one (TestBMCFieldsNeedAdmin).
		"/v1/hardware":  withoutBMC(apitest.HardwareYAML("node-09", "52:54:00:10:00:09", "10.10.1.19")),
		"/v1/templates": apitest.TemplateYAML("tmpl-09"),
		"/v1/workflows": apitest.WorkflowYAML("wf-09", "basic", "node-02", "52:54:00:10:00:02"),
	}
	names := map[string]string{"hardware": "node-01", "templates": "basic", "workflows": "wf-01"}
	credentials := []struct {
		name, token string
		role        api.Role
	}{
		{"viewer", s.Tokens["viewer"], api.RoleViewer},
		{"operator", s.Tokens["operator"], api.RoleOperator},
		{"worker", s.Tokens["worker-node-01"], api.RoleWorker},
		{"missing", "", ""},
		{"wrong", "tink-not-a-token", ""},
		{"admin", s.Tokens["admin"], api.RoleAdmin},
	}
	routes := s.API.Routes()
	require.Len(t, routes, 33)
	for _, cred := range credentials {
		for _, rt := range routes {
			path := rt.Path
			body := ""
			path = strings.Replace(path, ":id", "node-01", 1)
			if rt.Method == http.MethodPost && strings.HasPrefix(path, "/v1/workers/") {
				body = `{"workflow":"wf-01","run":1,"action":0,"attempt":1,"state":"RUNNING"}`
			}
			if strings.Contains(path, ":name") {
				res := strings.Split(path, "/")[2]
				path = strings.Replace(path, ":name", names[res], 1)
				if rt.Method == http.MethodPut {
					body = bodies["/v1/"+res]
				}
			} else if rt.Method == http.MethodPost {
				body = bodies[path]
			}
			t.Run(cred.name+" "+rt.Method+" "+rt.Path, func(t *testing.T) {
				r := do(t, s, rt.Method, path, cred.token, body)
				switch {
				case rt.Role == api.RolePublic:
					require.NotContains(t, []int{401, 403}, r.Status)
				case cred.role == "":
					e := r.apiError(t, http.StatusUnauthorized, state.EUNAUTHORIZED)
					require.Equal(t, `Bearer realm="tink-server"`, r.Header.Get("WWW-Authenticate"))
					if cred.token == "" {
						require.Contains(t, e.Message, "needs an API token")
					} else {
						require.Equal(t, "the API token is not valid", e.Message)
					}
				case cred.role.Permits(rt.Role):
					require.NotContains(t, []int{401, 403}, r.Status, string(r.Body))
				default:
					e := r.apiError(t, http.StatusForbidden, "forbidden")
					if cred.role == api.RoleWorker {
						require.Equal(t, "worker token worker-node-01 may use only the worker endpoints, not "+rt.Method+" "+rt.Path, e.Message)
					} else {
						require.Equal(t, "token "+cred.name+" has role "+string(cred.role)+"; "+rt.Method+" "+rt.Path+" needs "+string(rt.Role), e.Message)
					}
				}
			})
		}
	}

	t.Run("TheTableIsAsDocumented", func(t *testing.T) {
		want := map[string]api.Role{
			"GET /healthz": api.RolePublic, "GET /readyz": api.RolePublic, "GET /metrics": api.RoleViewer,
			"GET /v1/status": api.RoleViewer, "POST /v1/sync": api.RoleOperator,
			"POST /v1/suspend": api.RoleAdmin, "POST /v1/resume": api.RoleAdmin, "GET /v1/events": api.RoleViewer,
			"GET /v1/workflows/:name/events": api.RoleViewer, "POST /v1/workflows/:name/retry": api.RoleOperator,
			"POST /v1/workflows/:name/cancel": api.RoleOperator,
			"POST /v1/webhooks/git":           api.RolePublic,
			"POST /v1/plan":                   api.RoleViewer,
			"POST /v1/hardware/:name/power":   api.RoleOperator, "POST /v1/hardware/:name/bootdevice": api.RoleOperator,
			"GET /v1/backup":                   api.RoleAdmin,
			"GET /v1/workers/:id/actions/next": api.RoleWorker, "POST /v1/workers/:id/actions/report": api.RoleWorker,
		}
		for _, res := range []string{"hardware", "templates", "workflows"} {
			want["GET /v1/"+res] = api.RoleViewer
			want["POST /v1/"+res] = api.RoleOperator
			want["GET /v1/"+res+"/:name"] = api.RoleViewer
			want["PUT /v1/"+res+"/:name"] = api.RoleOperator
			want["DELETE /v1/"+res+"/:name"] = api.RoleAdmin
		}
		got := map[string]api.Role{}
		for _, rt := range routes {
			got[rt.Method+" "+rt.Path] = rt.Role
		}
		require.Equal(t, want, got)
	})

	t.Run("SchemeAndCase", func(t *testing.T) {
		ctx := context.Background()
		for _, h := range []struct {
			header string
			status int
		}{
			{"bearer " + s.Tokens["viewer"], 200},
			{"BEARER  " + s.Tokens["viewer"] + " ", 200},
			{"Basic " + s.Tokens["viewer"], 401},
			{s.Tokens["viewer"], 401},
			{"Bearer ", 401},
		} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/status", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", h.header)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, h.status, resp.StatusCode, h.header)
		}
	})
}

// TestNoSecretsInResponsesLogsOrEvents drives the API with every token, a
// wrong one, and a BMC password smuggled into a hardware object, then
// searches every response, the server's log and the event log for them.
func TestNoSecretsInResponsesLogsOrEvents(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	const bmcPassword = "bmc-Pa55word-do-not-show"
	const wrongToken = "tink-guessed-token-9999"
	var seen strings.Builder
	record := func(r response) {
		seen.Write(r.Body)
		for k, v := range r.Header {
			seen.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	admin, operator := s.Tokens["admin"], s.Tokens["operator"]
	seedFleet(t, s, admin)
	s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
		r.State = state.RunFailed
		r.Actions = apitest.Actions("52:54:00:10:00:01", "wipe")
		r.Actions[0].State = state.RunFailed
		r.Actions[0].Environment["BMC_PASS"] = bmcPassword
	})

	smuggled := strings.Replace(apitest.HardwareYAML("node-07", "52:54:00:10:00:07", "10.10.1.17"), "credentialsRef: bmc-node-07", "credentialsRef: bmc-node-07, password: "+bmcPassword, 1)
	r := do(t, s, http.MethodPost, "/v1/hardware", operator, smuggled)
	r.apiError(t, http.StatusBadRequest, state.EINVALID)
	record(r)
	smuggledJSON := `{"apiVersion":"tinkerbell.org/v1alpha1","kind":"Hardware","metadata":{"name":"node-08"},"spec":{"bmc":{"address":"10.0.0.1","credentialsRef":"x","password":"` + bmcPassword + `"}}}`
	r = do(t, s, http.MethodPost, "/v1/hardware", operator, smuggledJSON)
	r.apiError(t, http.StatusBadRequest, state.EINVALID)
	record(r)
	r = do(t, s, http.MethodPost, "/v1/hardware", operator, `{"kind": "`+bmcPassword)
	r.apiError(t, http.StatusBadRequest, state.EINVALID)
	record(r)

	for _, req := range []struct{ method, path, token string }{
		{http.MethodGet, "/v1/hardware", s.Tokens["viewer"]},
		{http.MethodGet, "/v1/workflows/wf-01", s.Tokens["viewer"]},
		{http.MethodGet, "/v1/workflows/wf-01/events", s.Tokens["viewer"]},
		{http.MethodGet, "/v1/workflows/wf-01/events?follow=true", s.Tokens["viewer"]},
		{http.MethodGet, "/v1/events", s.Tokens["viewer"]},
		{http.MethodGet, "/v1/status", s.Tokens["worker-node-01"]},
		{http.MethodPost, "/v1/workflows/wf-01/retry", s.Tokens["worker-node-02"]},
		{http.MethodPost, "/v1/workflows/wf-01/retry", operator},
		{http.MethodPost, "/v1/workflows/wf-01/cancel", operator},
		{http.MethodPost, "/v1/sync", operator},
		{http.MethodPost, "/v1/suspend", admin},
		{http.MethodPost, "/v1/resume", admin},
		{http.MethodDelete, "/v1/templates/basic", admin},
		{http.MethodGet, "/v1/status", wrongToken},
		{http.MethodGet, "/metrics", admin},
		{http.MethodGet, "/v1/nope", admin},
	} {
		record(do(t, s, req.method, req.path, req.token, ""))
	}
	evs := events(t, s)
	b, err := json.Marshal(evs)
	require.NoError(t, err)
	logText := s.Log.String()
	require.Contains(t, logText, `"user":"operator"`, "the log names tokens by name")

	secrets := []string{bmcPassword, wrongToken}
	for _, tok := range s.Tokens {
		secrets = append(secrets, tok)
	}
	for _, secret := range secrets {
		require.NotContains(t, seen.String(), secret, "responses")
		require.NotContains(t, logText, secret, "log")
		require.NotContains(t, string(b), secret, "events")
	}
	var byOperator int
	for _, ev := range evs {
		if ev.Actor == state.APIUser("operator") {
			byOperator++
		}
	}
	require.Positive(t, byOperator, "changes are events naming the token's name")
}

// TestBrowserGuard: a web page cannot make a browser change a server's
// state (CSRF), nor reach a server without tokens under a rebound host
// name.
func TestBrowserGuard(t *testing.T) {
	s := apitest.MustRunServer(t)
	withTokens := apitest.MustRunServer(t, apitest.WithTokens())
	sendTo := func(s *apitest.Server, method, path string, header map[string]string) response {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, strings.NewReader(apitest.TemplateYAML("evil")))
		require.NoError(t, err)
		for k, v := range header {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var r response
		r.Status, r.Header = resp.StatusCode, resp.Header
		r.Body, _ = io.ReadAll(resp.Body)
		return r
	}
	send := func(method, path string, header map[string]string) response {
		t.Helper()
		return sendTo(s, method, path, header)
	}
	e := send(http.MethodPost, "/v1/templates", map[string]string{"Sec-Fetch-Site": "cross-site"}).apiError(t, http.StatusForbidden, "forbidden")
	require.Equal(t, "cross-origin browser requests that change state are refused", e.Message)
	send(http.MethodPost, "/v1/suspend", map[string]string{"Origin": "http://evil.example"}).apiError(t, http.StatusForbidden, "forbidden")
	e = send(http.MethodGet, "/v1/status", map[string]string{"Host": "evil.example:42113"}).apiError(t, http.StatusForbidden, "forbidden")
	require.Contains(t, e.Message, `answers only requests addressed to localhost or an IP address, not "evil.example:42113"`)
	e = send(http.MethodGet, "/v1/status", map[string]string{"Host": "0.0.0.0:42113"}).apiError(t, http.StatusForbidden, "forbidden")
	require.Contains(t, e.Message, `not "0.0.0.0:42113"`)
	require.Equal(t, http.StatusOK, send(http.MethodGet, "/v1/status", map[string]string{"Host": "10.0.2.2:42113"}).Status, "an IP address cannot be rebound: a forward (a VM's user network) reached the loopback socket")
	require.Equal(t, http.StatusOK, send(http.MethodGet, "/v1/status", map[string]string{"Host": "localhost:42113", "Sec-Fetch-Site": "cross-site"}).Status, "reads from a page on localhost are same-host")
	require.Equal(t, http.StatusCreated, send(http.MethodPost, "/v1/templates", map[string]string{"Sec-Fetch-Site": "same-origin"}).Status)

	r := sendTo(withTokens, http.MethodGet, "/v1/status", map[string]string{"Host": "tink.example:42113", "Authorization": "Bearer " + withTokens.Tokens["viewer"]})
	require.Equal(t, http.StatusOK, r.Status, "with tokens, any host name may reach the server")
}

// TestWorkerTokenBoundToItsHardware: a worker token for node-01 cannot ask
// for or report on node-02's actions.
func TestWorkerTokenBoundToItsHardware(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	seedFleet(t, s, s.Tokens["admin"])
	tok := s.Tokens["worker-node-01"]
	r := do(t, s, http.MethodGet, "/v1/workers/node-02/actions/next?wait=0s", tok, "")
	e := r.apiError(t, http.StatusForbidden, "forbidden")
	require.Equal(t, "worker token worker-node-01 is bound to hardware node-01; it may not act for node-02", e.Message)
	r = do(t, s, http.MethodPost, "/v1/workers/node-02/actions/report", tok, `{"workflow":"wf-02","run":1,"action":0,"attempt":1,"state":"SUCCESS"}`)
	r.apiError(t, http.StatusForbidden, "forbidden")
}
