package schema_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

func mustLoad(t *testing.T, dir string) *schema.Set {
	t.Helper()
	set, err := schema.Load(os.DirFS(dir))
	require.NoError(t, err)
	return set
}

// loadErrors loads fsys and returns its errors printed one per line.
func loadErrors(t *testing.T, l *schema.Loader, fsys fstest.MapFS) []string {
	t.Helper()
	_, err := l.Load(context.Background(), fsys)
	require.Error(t, err)
	var list schema.ErrorList
	require.True(t, errors.As(err, &list), "want an ErrorList, got %T: %v", err, err)
	var out []string
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

func TestLoadExampleRepo(t *testing.T) {
	set := mustLoad(t, filepath.Join("..", "examples", "repo"))
	require.Equal(t, map[string]int{"Hardware": 3, "Template": 2, "Workflow": 2, "Machine": 0}, set.Counts())
	for _, h := range set.Hardware {
		require.NotNil(t, h.Spec.BMC, h.Metadata.Name)
		require.NotEmpty(t, h.Spec.BMC.CredentialsRef)
		require.Equal(t, "ams1", h.Metadata.Labels["site"], "tink.cue default label")
		require.Equal(t, "r1", h.Metadata.Labels["rack"], "own label kept")
	}
	byName := map[string]*schema.Template{}
	for _, tp := range set.Templates {
		byName[tp.Metadata.Name] = tp
	}
	require.True(t, byName["basic-provision"].Bare, "bare template document")
	require.False(t, byName["ubuntu-image"].Bare)
	for _, w := range set.Workflows {
		require.NotNil(t, w.Rendered, w.Metadata.Name)
	}
	var ubuntu *schema.Workflow
	for _, w := range set.Workflows {
		if w.Spec.TemplateRef == "ubuntu-image" {
			ubuntu = w
		}
	}
	require.NotNil(t, ubuntu)
	actions := ubuntu.Rendered.Tasks[0].Actions
	require.Equal(t, "52:54:00:10:00:02", ubuntu.Rendered.Tasks[0].Worker)
	require.Equal(t, "/dev/sda", actions[0].Environment["DEST_DISK"])
	require.Equal(t, "true", actions[0].Environment["COMPRESSED"], "YAML true stays the text true")
	require.Equal(t, "/dev/sda1", actions[1].Environment["DEST_DISK"], "formatPartition")
	require.Equal(t, "0644", actions[1].Environment["MODE"], "0644 stays 0644, not 420")
	require.Contains(t, actions[1].Environment["CONTENTS"], "addresses: [10.10.1.12/24]")
	require.True(t, actions[2].Background)
	require.Equal(t, "host", actions[2].Pid)
}

// TestInvalidRepositories loads each broken repository under
// testdata/invalid: one mistake each, and the errors printed must be
// exactly those in its errors.txt (file, line, column, field and message).
func TestInvalidRepositories(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join("testdata", "invalid"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(dirs), 20)
	l := schema.NewLoader()
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata", "invalid", d.Name())
			want, err := os.ReadFile(filepath.Join(dir, "errors.txt"))
			require.NoError(t, err)
			_, err = l.Load(context.Background(), os.DirFS(dir))
			var list schema.ErrorList
			require.True(t, errors.As(err, &list), "want errors, got %v", err)
			got := list.Error() + "\n"
			require.Equal(t, string(want), got)
			require.Len(t, list, 1, "one mistake, one error")
			e := list[0]
			require.NotEmpty(t, e.File)
			require.NotEmpty(t, e.Message)
		})
	}
}

// TestBaseRepositoryIsValid shows the broken repositories differ from a
// valid one by their single mistake.
func TestBaseRepositoryIsValid(t *testing.T) {
	set := mustLoad(t, filepath.Join("testdata", "base"))
	require.Equal(t, 4, set.Len())
}

func TestErrorFormat(t *testing.T) {
	e := &schema.Error{Pos: schema.Pos{File: "hardware/node-01.yaml", Line: 7, Column: 12}, Path: "spec.interfaces[0].dhcp.mac", Message: `"zz:11" is not a MAC address`}
	require.Equal(t, `hardware/node-01.yaml:7:12: spec.interfaces[0].dhcp.mac: "zz:11" is not a MAC address`, e.Error())
	e = &schema.Error{Pos: schema.Pos{File: "big.yaml"}, Message: "too big"}
	require.Equal(t, "big.yaml: too big", e.Error())
}

const hwDoc = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %s
spec:
  interfaces:
    - dhcp:
        mac: %s
`

// TestEveryErrorReported: mistakes in several files and several fields of
// one object are all reported, in file order.
func TestEveryErrorReported(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte(fmt.Sprintf(hwDoc, "a", "zz") + "    - dhcp:\n        mac: yy\n        hostnme: x\n")},
		"b.yaml": {Data: []byte(fmt.Sprintf(hwDoc, "B", "52:54:00:00:00:01"))},
		"c.yaml": {Data: []byte("kind: Hardware\napiVersion: tinkerbell.org/v1alpha1\nmetadata: {name: c}\nspec: {bmc: {address: x}}\n")},
	}
	got := loadErrors(t, schema.NewLoader(), fsys)
	require.Equal(t, []string{
		`a.yaml:8:14: spec.interfaces[0].dhcp.mac: "zz" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)`,
		`a.yaml:10:14: spec.interfaces[1].dhcp.mac: "yy" is not a MAC address (six lowercase hex pairs, e.g. 52:54:00:12:34:56)`,
		`a.yaml:11:9: spec.interfaces[1].dhcp.hostnme: unknown field "hostnme" (did you mean "hostname"?)`,
		`b.yaml:4:9: metadata.name: "B" is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
		`c.yaml:4:13: spec.bmc.credentialsRef: missing required field "credentialsRef"`,
	}, got)
}

// TestKubectlDump: a `kubectl get -o yaml` List with server-set fields and
// status loads, and the dropped fields are counted.
func TestKubectlDump(t *testing.T) {
	dump := `apiVersion: v1
kind: List
items:
- apiVersion: tinkerbell.org/v1alpha1
  kind: Hardware
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: '{"x":1}'
    creationTimestamp: "2024-05-01T10:00:00Z"
    generation: 1
    managedFields:
    - manager: kubectl
    name: node-01
    namespace: tink-system
    resourceVersion: "12345"
    uid: 6f1b1c9e-0000-0000-0000-000000000001
  spec:
    interfaces:
    - dhcp:
        mac: 52:54:00:00:00:01
  status:
    state: Ready
metadata:
  resourceVersion: ""
`
	set, err := schema.Load(fstest.MapFS{"dump.yaml": {Data: []byte(dump)}})
	require.NoError(t, err)
	require.Len(t, set.Hardware, 1)
	h := set.Hardware[0]
	require.Equal(t, "tink-system", h.Metadata.Namespace)
	require.Empty(t, h.Metadata.Annotations)
	require.Equal(t, 7, set.Ignored) // status, creationTimestamp, generation, managedFields, resourceVersion, uid, last-applied
}

// TestBareTemplateNotYAMLUntilRendered: unquoted {{ }} values and {{- if}}
// around list items are normal in Tinkerbell templates.
func TestBareTemplateNotYAMLUntilRendered(t *testing.T) {
	tmpl := `version: "0.1"
name: conditional
global_timeout: 600
tasks:
  - name: install
    worker: {{.device_1}}
    actions:
      {{- if eq (index .Hardware.Interfaces 0).DHCP.Arch "x86_64" }}
      - name: x86
        image: x86-installer:v1
        timeout: {{ 60 | add 60 }}
      {{- end }}
      - name: always
        image: installer:v1
        timeout: 60
`
	fsys := fstest.MapFS{
		"templates/t.yaml": {Data: []byte(tmpl)},
		"hardware/h.yaml":  {Data: []byte(fmt.Sprintf(hwDoc, "h", "52:54:00:00:00:01") + "        arch: x86_64\n")},
		"workflows/w.yaml": {Data: []byte("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec: {templateRef: conditional, hardwareRef: h, hardwareMap: {device_1: \"52:54:00:00:00:01\"}}\n")},
	}
	set, err := schema.Load(fsys)
	require.NoError(t, err)
	doc := set.Workflows[0].Rendered
	require.Len(t, doc.Tasks[0].Actions, 2)
	require.Equal(t, int64(120), doc.Tasks[0].Actions[0].Timeout)
	require.Equal(t, "52:54:00:00:00:01", doc.Tasks[0].Worker)
}

// TestTemplateErrorNamesAllWorkflows: one template mistake rendered for
// many workflows is one error that says how many it affects.
func TestTemplateErrorNamesAllWorkflows(t *testing.T) {
	fsys := fstest.MapFS{
		"t.yaml": {Data: []byte("version: \"0.1\"\nname: t\ntasks:\n  - name: a\n    worker: \"{{.device_1}}\"\n    actions:\n      - name: x\n        image: x:v1\n        timeout: {{ .Hardware.Nope }}\n")},
	}
	for i := 1; i <= 3; i++ {
		mac := fmt.Sprintf("52:54:00:00:00:0%d", i)
		fsys[fmt.Sprintf("h%d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(hwDoc, fmt.Sprintf("h%d", i), mac))}
		fsys[fmt.Sprintf("w%d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: w%d}\nspec: {templateRef: t, hardwareRef: h%d, hardwareMap: {device_1: %q}}\n", i, i, mac))}
	}
	got := loadErrors(t, schema.NewLoader(), fsys)
	require.Len(t, got, 1)
	require.True(t, strings.HasPrefix(got[0], "t.yaml:9:"), got[0])
	require.Contains(t, got[0], "can't evaluate field Nope")
	require.Contains(t, got[0], "(rendered for workflow w1 and 2 more)")
}

func TestObjectLimit(t *testing.T) {
	fsys := fstest.MapFS{}
	var b strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, hwDoc+"---\n", fmt.Sprintf("n%d", i), fmt.Sprintf("52:54:00:00:00:%02x", i))
	}
	fsys["many.yaml"] = &fstest.MapFile{Data: []byte(b.String())}
	l := schema.NewLoader()
	l.MaxObjects = 10
	got := loadErrors(t, l, fsys)
	require.Equal(t, []string{".: the repository declares more than 10 objects; split it or raise the limit"}, got)
	require.Equal(t, 250_000, schema.NewLoader().Limit(), "the default limit: a 100,000-machine fleet with a workflow each fits")
}

func TestCancelledLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := schema.NewLoader().Load(ctx, os.DirFS(filepath.Join("..", "examples", "repo")))
	require.ErrorIs(t, err, context.Canceled)
}

// TestAliasBomb: YAML aliases that expand exponentially end in an error,
// not in exhausted memory.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	doc := "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: bomb}\n" + b.String() + "spec:\n  metadata:\n    instance:\n      tags: *a8\n"
	got := loadErrors(t, schema.NewLoader(), fstest.MapFS{"bomb.yaml": {Data: []byte(doc)}})
	require.NotEmpty(t, got)
	require.Less(t, len(got), 100, "errors do not multiply with the aliases")
	require.Contains(t, strings.Join(got, "\n"), "spec.metadata.instance.tags[0]: must be a string, got a list")
}
