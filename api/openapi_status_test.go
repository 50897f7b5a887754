package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// documentedStatuses reads api/openapi.yaml: for each "METHOD /path" (the
// router's :name spelled {name}), the statuses it lists.
func documentedStatuses(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	out := map[string][]string{}
	for path, item := range doc.Paths {
		for method, node := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Responses map[string]any `yaml:"responses"`
			}
			require.NoError(t, node.Decode(&op), "%s %s", method, path)
			for code := range op.Responses {
				out[strings.ToUpper(method)+" "+path] = append(out[strings.ToUpper(method)+" "+path], code)
			}
		}
	}
	return out
}

// TestOpenAPIDocumentsWhatIsAnswered sends requests whose answers are
// easy to get wrong (a sync of a revision with errors, a replayed or
// unnamed webhook delivery, an operator setting a BMC, a sync while
// suspended) and checks that api/openapi.yaml lists the status each one
// got: the document and the server must agree on what a client sees.
func TestOpenAPIDocumentsWhatIsAnswered(t *testing.T) {
	const secret = "hook-secret"
	s := apitest.MustRunServer(t, apitest.WithTokens(), apitest.WithWebhook(secret, func() {}))
	doc := documentedStatuses(t)
	admin, operator := s.Tokens["admin"], s.Tokens["operator"]
	documented := func(t *testing.T, op string, r response) {
		t.Helper()
		require.Contains(t, doc[op], strconv.Itoa(r.Status), "%s answered %d, which api/openapi.yaml does not list for it: %s", op, r.Status, r.Body)
	}

	t.Run("SyncWithRepositoryErrors", func(t *testing.T) {
		// What the reconcile loop does with a revision that has errors:
		// record them all, and return EINVALID.
		_, err := s.Store.Apply(context.Background(), &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{
			LastAttemptedRevision: "main@sha1:bad", LastAppliedRevision: apitest.Revision,
			Errors: []state.SyncError{
				{File: "hardware/x.yaml", Line: 3, Column: 5, Path: "spec", Message: "broken"},
				{File: "hardware/y.yaml", Line: 1, Column: 1, Path: "kind", Message: "unknown kind"},
			},
		}})
		require.NoError(t, err)
		s.Syncer.Err = state.Errorf(state.EINVALID, "main@sha1:bad has 2 error(s); hardware/x.yaml:3:5: spec: broken")
		defer func() { s.Syncer.Err = nil }()
		r := do(t, s, http.MethodPost, "/v1/sync", operator, "")
		documented(t, "POST /v1/sync", r)
		require.Equal(t, http.StatusOK, r.Status, "a revision with errors is the answer, not a failed call: %s", r.Body)
		var st client.Status
		require.NoError(t, json.Unmarshal(r.Body, &st))
		require.Len(t, st.Sync.Errors, 2, "every error, not the first only")

		s.Syncer.Err = state.Errorf(state.EINVALID, "no errors recorded")
		_, err = s.Store.Apply(context.Background(), &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{LastAppliedRevision: apitest.Revision}})
		require.NoError(t, err)
		r = do(t, s, http.MethodPost, "/v1/sync", operator, "")
		documented(t, "POST /v1/sync", r)
		require.Equal(t, http.StatusInternalServerError, r.Status, "an EINVALID that left no errors to show is the server's fault")
	})
	t.Run("SyncSuspended", func(t *testing.T) {
		documented(t, "POST /v1/suspend", do(t, s, http.MethodPost, "/v1/suspend", admin, ""))
		r := do(t, s, http.MethodPost, "/v1/sync", operator, "")
		documented(t, "POST /v1/sync", r)
		require.Equal(t, http.StatusConflict, r.Status)
		documented(t, "POST /v1/resume", do(t, s, http.MethodPost, "/v1/resume", admin, ""))
	})
	t.Run("Webhook", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main"}`)
		for _, h := range []map[string]string{
			github("push", sign(secret, body), "d-1"),
			github("push", sign(secret, body), "d-1"),
			{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, body)},
			github("push", strings.ToUpper(sign(secret, body)), "d-2"),
		} {
			resp := postHook(t, s, h, body)
			documented(t, "POST /v1/webhooks/git", response{Status: resp.StatusCode})
		}
	})
	t.Run("OperatorSetsBMC", func(t *testing.T) {
		r := do(t, s, http.MethodPost, "/v1/hardware", operator, apitest.HardwareYAML("node-31", "52:54:00:10:00:31", "10.10.1.131"))
		require.Equal(t, http.StatusForbidden, r.Status)
		documented(t, "POST /v1/hardware", r)
	})
}
