package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestTemplates(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")

	t.Run("BareDocument", func(t *testing.T) {
		o := do(t, s, http.MethodGet, "/v1/templates/basic", "", "").object(t)
		require.Equal(t, "Template", o.Kind)
		require.Equal(t, "api", o.Status.Source)
		var spec struct{ Data string }
		require.NoError(t, json.Unmarshal(o.Spec, &spec))
		require.Equal(t, apitest.TemplateYAML("basic"), spec.Data)
	})

	t.Run("ObjectForm", func(t *testing.T) {
		body := "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: crd}\nspec:\n  data: |\n" +
			indent(apitest.TemplateYAML("crd"), "    ")
		r := do(t, s, http.MethodPost, "/v1/templates", "", body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})

	t.Run("ErrSyntax", func(t *testing.T) {
		bad := strings.Replace(apitest.TemplateYAML("broken"), `"{{.device_1}}"`, `"{{.device_1"`, 1)
		e := do(t, s, http.MethodPost, "/v1/templates", "", bad).apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Len(t, e.Details, 1)
		require.Equal(t, "spec.data", e.Details[0].Path)
		require.Equal(t, 6, e.Details[0].Line)
		require.Contains(t, e.Details[0].Message, "template syntax")
	})

	t.Run("ErrDoesNotRenderForItsWorkflows", func(t *testing.T) {
		cur := do(t, s, http.MethodGet, "/v1/templates/basic", "", "").object(t)
		doc := strings.Replace(apitest.TemplateYAML("basic"), "{{.device_1}}", "{{.device_2}}", 1)
		body := "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata:\n  name: basic\n  resourceVersion: \"" + cur.Metadata.ResourceVersion + "\"\nspec:\n  data: |\n" + indent(doc, "    ")
		e := do(t, s, http.MethodPut, "/v1/templates/basic", "", body).apiError(t, http.StatusBadRequest, state.EINVALID)
		require.Equal(t, "template basic does not render for the workflows that use it: 1 problem", e.Message)
		require.Equal(t, "spec.data", e.Details[0].Path)
		require.Contains(t, e.Details[0].Message, "(rendered for workflow wf-01)")
		require.Contains(t, e.Details[0].Message, "device_2")
		require.Equal(t, 13, e.Details[0].Line, "the line of {{.device_2}} in the request body")
	})

	t.Run("ErrDeleteInUse", func(t *testing.T) {
		e := do(t, s, http.MethodDelete, "/v1/templates/basic", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Equal(t, "template basic is used by workflow(s) wf-01; delete those first", e.Message)
		e = do(t, s, http.MethodDelete, "/v1/hardware/node-01", "", "").apiError(t, http.StatusConflict, state.ECONFLICT)
		require.Equal(t, "hardware node-01 is used by workflow(s) wf-01; delete those first", e.Message)
	})

	t.Run("Delete", func(t *testing.T) {
		require.Equal(t, http.StatusOK, do(t, s, http.MethodDelete, "/v1/templates/crd", "", "").Status)
	})
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestTemplateListAndUpdate(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedFleet(t, s, "")
	var list client.List
	do(t, s, http.MethodGet, "/v1/templates", "", "").decode(t, &list)
	require.Equal(t, "TemplateList", list.Kind)
	require.Len(t, list.Items, 1)

	cur := list.Items[0]
	doc := strings.Replace(apitest.TemplateYAML("basic"), "timeout: 600", "timeout: 900", 1)
	body := "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata:\n  name: basic\n  resourceVersion: \"" + cur.Metadata.ResourceVersion + "\"\nspec:\n  data: |\n" + indent(doc, "    ")
	r := do(t, s, http.MethodPut, "/v1/templates/basic", "", body)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.object(t).Spec), "timeout: 900")
}

// TestEveryCollectionRejectsBadBodies runs the body checks against each
// collection: they share one decoder, and each must use it.
func TestEveryCollectionRejectsBadBodies(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithMaxBody(2048))
	seedFleet(t, s, "")
	for _, res := range []string{"hardware", "templates", "workflows"} {
		for _, path := range []string{"/v1/" + res, "/v1/" + res + "/x"} {
			method := http.MethodPost
			if strings.HasSuffix(path, "/x") {
				method = http.MethodPut
			}
			t.Run(method+" "+path, func(t *testing.T) {
				do(t, s, method, path, "", `{"apiVersion": `).apiError(t, http.StatusBadRequest, state.EINVALID)
				do(t, s, method, path, "", "apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: x}\nspec: {templateRef: a, hardwareRef: b, colour: red}\n").
					apiError(t, http.StatusBadRequest, state.EINVALID)
				do(t, s, method, path, "", strings.Repeat("#", 3000)).apiError(t, http.StatusRequestEntityTooLarge, "too_large")
				do(t, s, method, path, "", "").apiError(t, http.StatusBadRequest, state.EINVALID)
			})
		}
	}
}
