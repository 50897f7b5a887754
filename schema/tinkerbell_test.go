package schema_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/tinkops/tinkops/schema"
)

// update rewrites golden files: go test ./schema -run TestTinkerbellCorpus -update
// (review the diff before committing it).
var update = flag.Bool("update", false, "rewrite golden files")

// The corpus under testdata/tinkerbell is written from Tinkerbell's docs
// and examples: playground hardware, a Hardware with every field, a Rufio
// Machine named by bmcRef, a template using Tinkerbell's functions and
// {{- if}} around list items, workflows with bootOptions, and a kubectl
// dump with status, managedFields and uids.
func TestTinkerbellCorpus(t *testing.T) {
	set := mustLoad(t, filepath.Join("testdata", "tinkerbell"))
	require.Equal(t, map[string]int{"Hardware": 3, "Template": 2, "Workflow": 3, "Machine": 2}, set.Counts())
	require.Equal(t, 25, set.Ignored)
	for _, w := range set.Workflows {
		t.Run(w.Metadata.Name, func(t *testing.T) {
			got, err := k8syaml.Marshal(w.Rendered)
			require.NoError(t, err)
			golden := filepath.Join("testdata", "tinkerbell-golden", w.Metadata.Namespace+"-"+w.Metadata.Name+".yaml")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

// TestEveryFieldKept: a Hardware using every Tinkerbell field decodes into
// tinkops' types and marshals back to the same document (zero values
// aside, which Kubernetes omits too).
func TestEveryFieldKept(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "tinkerbell", "hardware", "every-field.yaml"))
	require.NoError(t, err)
	set := mustLoad(t, filepath.Join("testdata", "tinkerbell"))
	var h *schema.Hardware
	for _, x := range set.Hardware {
		if x.Metadata.Name == "every-field" {
			h = x
		}
	}
	require.NotNil(t, h)
	got, err := json.Marshal(h)
	require.NoError(t, err)
	var want, have any
	var doc any
	require.NoError(t, yaml.Unmarshal(src, &doc))
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &want))
	require.NoError(t, json.Unmarshal(got, &have))
	// Resources are Kubernetes quantities: 2 and "2" are the same quantity.
	want.(map[string]any)["spec"].(map[string]any)["resources"].(map[string]any)["nvidia.com/gpu"] = "2"
	require.Equal(t, dropZero(want), dropZero(have))
}

// dropZero removes false, 0, "" and empty containers, as omitempty does.
func dropZero(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if e = dropZero(e); e != nil {
				out[k] = e
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		var out []any
		for _, e := range x {
			if e = dropZero(e); e == nil {
				e = map[string]any{}
			}
			out = append(out, e)
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case bool:
		if !x {
			return nil
		}
	case float64:
		if x == 0 {
			return nil
		}
	case string:
		if x == "" {
			return nil
		}
	}
	return v
}

// TestBMCRefEqualsInlineBMC: a Hardware with bmcRef to a Machine gets the
// connection an inline bmc block gives.
func TestBMCRefEqualsInlineBMC(t *testing.T) {
	const inline = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: a, namespace: dc1}
spec:
  bmc: {address: 10.0.0.5, port: 623, protocol: ipmi, credentialsRef: bmc-a, insecureTLS: true}
`
	const viaRef = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: b, namespace: dc1}
spec:
  bmcRef: {apiGroup: bmc.tinkerbell.org, kind: Machine, name: bmc-b}
---
apiVersion: bmc.tinkerbell.org/v1alpha1
kind: Machine
metadata: {name: bmc-b, namespace: dc1}
spec:
  connection:
    host: 10.0.0.5
    insecureTLS: true
    authSecretRef: {name: bmc-a, namespace: dc1}
`
	set, err := schema.Load(fstest.MapFS{"a.yaml": {Data: []byte(inline)}, "b.yaml": {Data: []byte(viaRef)}})
	require.NoError(t, err)
	a, ok := set.BMC(set.Hardware[0])
	require.True(t, ok)
	b, ok := set.BMC(set.Hardware[1])
	require.True(t, ok)
	require.Equal(t, "inline", a.From)
	require.Equal(t, "Machine/dc1/bmc-b", b.From)
	a.From, b.From = "", ""
	require.Equal(t, a, b)
	require.Equal(t, 623, b.Port, "Rufio's default port")
	require.Equal(t, []string{"dc1/bmc-a", "bmc-a"}, b.Secret.Paths())
}

func TestMachinePreferringRedfish(t *testing.T) {
	set := mustLoad(t, filepath.Join("testdata", "tinkerbell"))
	for _, h := range set.Hardware {
		if h.Metadata.Name != "every-field" {
			continue
		}
		c, ok := set.BMC(h)
		require.True(t, ok)
		require.Equal(t, schema.BMCConnection{Host: "10.1.100.30", Port: 443, Protocol: "redfish", InsecureTLS: true,
			Secret: schema.SecretRef{Namespace: "tink-system", Name: "bmc-creds-every-field"}, CipherSuite: "3",
			From: "Machine/tink-system/bmc-every-field"}, *c)
	}
}

// TestNamesUniquePerNamespace: the same name in two namespaces is two
// objects; twice in one namespace is an error at the second.
func TestNamesUniquePerNamespace(t *testing.T) {
	doc := func(ns, mac string) string {
		return "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: node-01, namespace: " + ns + "}\nspec: {interfaces: [{dhcp: {mac: \"" + mac + "\"}}]}\n"
	}
	set, err := schema.Load(fstest.MapFS{"a.yaml": {Data: []byte(doc("dc1", "52:54:00:00:00:01"))}, "b.yaml": {Data: []byte(doc("dc2", "52:54:00:00:00:02"))}})
	require.NoError(t, err)
	require.Len(t, set.Hardware, 2)
	_, err = schema.Load(fstest.MapFS{"a.yaml": {Data: []byte(doc("dc1", "52:54:00:00:00:01"))}, "b.yaml": {Data: []byte(doc("dc1", "52:54:00:00:00:02"))}})
	require.EqualError(t, err, `b.yaml:3:18: metadata.name: Hardware "dc1/node-01" is already declared at a.yaml:1:1`)
}
