package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// templateDoc is a bare template whose one task runs on worker and whose
// action names the machine's disk when disk is set.
func templateDoc(name, worker, disk string) string {
	env := ""
	if disk != "" {
		env = "\n        environment:\n          DEST_DISK: " + disk
	}
	return fmt.Sprintf(`version: "0.1"
name: %s
tasks:
  - name: provision
    worker: %q
    actions:
      - name: install
        image: alpine:3
        timeout: 600%s
`, name, worker, env)
}

// workflowDoc is a workflow whose hardwareMap maps device_1 to mac and
// device_2 to more[0], when given.
func workflowDoc(name, template, hardware, mac string, more ...string) string {
	doc := apitest.WorkflowYAML(name, template, hardware, mac)
	if len(more) > 0 {
		doc += fmt.Sprintf("    device_2: %q\n", more[0])
	}
	return doc
}

func macOf(i int) string { return fmt.Sprintf("52:54:00:10:00:%02d", i) }

// TestWorkflowChecksIndexed: the set-wide checks of workflows and templates
// written through the API, and the in-use check of a deletion, answer
// through the fleet index exactly as they did reading the whole store (the
// same acceptance or refusal, the same message and details), for
// workflows and templates that pass and that fail each rule (a template
// naming a worker MAC of a machine outside the workflow's hardwareMap
// among them), after creates, updates and deletions through the API and
// syncs from Git.
func TestWorkflowChecksIndexed(t *testing.T) {
	s := apitest.MustRunServer(t)
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		s.PutGit(t, fmt.Sprintf("hardware/node-%02d.yaml", i), apitest.HardwareYAML(fmt.Sprintf("node-%02d", i), macOf(i), fmt.Sprintf("10.10.1.%d", i)))
	}
	s.PutGit(t, "hardware/bare.yaml", `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: bare
spec:
  interfaces:
    - dhcp: {mac: "52:54:00:10:00:40"}
`)
	s.PutGit(t, "templates/basic.yaml", templateDoc("basic", "{{.device_1}}", ""))
	s.PutGit(t, "templates/disky.yaml", templateDoc("disky", "{{.device_1}}", "{{ index .Hardware.Disks 0 }}"))
	s.PutGit(t, "templates/literal.yaml", templateDoc("literal", macOf(5), ""))
	s.PutGit(t, "workflows/wf-01.yaml", workflowDoc("wf-01", "basic", "node-01", macOf(1)))
	s.PutGit(t, "workflows/wf-02.yaml", workflowDoc("wf-02", "disky", "node-02", macOf(2)))
	s.PutGit(t, "workflows/wf-03.yaml", workflowDoc("wf-03", "literal", "node-03", macOf(3)))
	s.PutGit(t, "workflows/wf-04.yaml", workflowDoc("wf-04", "basic", "node-04", macOf(4), macOf(5)))

	writes := []struct{ kind, body string }{
		{state.KindWorkflow, workflowDoc("new", "basic", "node-06", macOf(6))},
		{state.KindWorkflow, workflowDoc("new", "nope", "node-06", macOf(6))},
		{state.KindWorkflow, workflowDoc("new", "basic", "node-99", macOf(6))},
		{state.KindWorkflow, workflowDoc("new", "basic", "node-06", macOf(2))},
		{state.KindWorkflow, workflowDoc("new", "basic", "node-06", "52:54:00:10:00:77")},
		{state.KindWorkflow, workflowDoc("new", "literal", "node-06", macOf(6))},
		{state.KindWorkflow, workflowDoc("new", "disky", "bare", "52:54:00:10:00:40")},
		{state.KindWorkflow, workflowDoc("new", "basic", "node-06", macOf(6), macOf(5))},
		{state.KindWorkflow, workflowDoc("new", "literal", "node-05", macOf(5))},
		{state.KindTemplate, templateDoc("basic", "{{.device_1}}", "")},
		{state.KindTemplate, templateDoc("basic", "{{.device_2}}", "")},
		{state.KindTemplate, templateDoc("disky", "{{.device_1}}", "{{ index .Hardware.Disks 1 }}")},
		{state.KindTemplate, templateDoc("literal", "52:54:00:10:00:99", "")},
		{state.KindTemplate, templateDoc("literal", macOf(6), "")},
		{state.KindTemplate, templateDoc("unused", macOf(5), "")},
	}
	compare := func(step string) {
		t.Helper()
		refused := 0
		for _, w := range writes {
			indexed, whole, err := s.API.CheckBoth(ctx, w.kind, w.body)
			require.NoError(t, err)
			require.Equal(t, whole, indexed, "%s: %s", step, w.body)
			if whole != nil {
				refused++
			}
		}
		require.NotZero(t, refused, step)
		require.Less(t, refused, len(writes), step)
		objs, err := state.AllObjects(ctx, s.Store, state.ObjectQuery{})
		require.NoError(t, err)
		for _, o := range objs {
			if o.Kind == state.KindWorkflow {
				continue
			}
			indexed, whole, err := s.API.DeleteCheckBoth(ctx, o.Key())
			require.NoError(t, err)
			require.Equal(t, whole, indexed, "%s: delete %s", step, o.Key())
		}
	}
	compare("synced")
	require.Equal(t, 1, s.API.IndexReloads(), "the index was built once")

	post := func(path, body string) {
		t.Helper()
		r := do(t, s, http.MethodPost, path, "", body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	}
	post("/v1/hardware", apitest.HardwareYAML("node-07", macOf(7), "10.10.1.7"))
	post("/v1/workflows", workflowDoc("wf-05", "literal", "node-07", macOf(7)))
	post("/v1/templates", templateDoc("unused", macOf(5), ""))
	compare("created through the API")

	put(t, s, "/v1/workflows/wf-04", "?force=true", workflowDoc("wf-04", "basic", "node-04", macOf(4), macOf(7)))
	put(t, s, "/v1/templates/literal", "?force=true", `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata:
  name: literal
spec:
  data: |
`+indent(templateDoc("literal", macOf(6), ""), "    "))
	compare("updated through the API")

	r := do(t, s, http.MethodDelete, "/v1/hardware/node-05?force=true", "", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	compare("deleted through the API")

	// A sync: wf-01 moves to the disky template, wf-02 goes, a machine
	// takes node-05's MAC, the literal template names it again.
	b := &state.Batch{Actor: state.ActorGit, Revision: apitest.Revision}
	loader := schema.NewLoader()
	for _, f := range []struct{ file, doc string }{
		{"workflows/wf-01.yaml", workflowDoc("wf-01", "disky", "node-01", macOf(1))},
		{"hardware/node-55.yaml", apitest.HardwareYAML("node-55", macOf(5), "10.10.1.55")},
		{"templates/literal.yaml", templateDoc("literal", macOf(5), "")},
	} {
		objs, _, errs := loader.DecodeFile(f.file, []byte(f.doc))
		require.Empty(t, errs)
		o, err := reconciler.ToState(objs[0], state.SourceGit, apitest.Revision)
		require.NoError(t, err)
		if cur, err := s.Store.GetObject(ctx, o.Key()); err == nil {
			o.ResourceVersion = cur.ResourceVersion
		}
		b.Put(o, "")
	}
	b.Delete(state.ObjectKey{Kind: state.KindWorkflow, Name: "wf-02"}, 0, "")
	_, err := s.Store.Apply(ctx, b)
	require.NoError(t, err)
	compare("synced again")
	require.Equal(t, 1, s.API.IndexReloads(), "the index followed every change from the event log")
}
