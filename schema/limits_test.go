package schema_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// bigHardware is a Hardware with n labels and m interfaces.
func bigHardware(labels, interfaces int) string {
	var b strings.Builder
	b.WriteString("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata:\n  name: big\n  labels:\n")
	for i := range labels {
		fmt.Fprintf(&b, "    l%05d: v\n", i)
	}
	b.WriteString("spec:\n  interfaces:\n")
	for i := range interfaces {
		fmt.Fprintf(&b, "    - dhcp: {mac: \"52:54:00:00:%02x:%02x\"}\n", i/256, i%256)
	}
	return b.String()
}

// TestObjectLimits: an object over a limit is refused with the field, the
// count and the limit, at the field's position.
func TestObjectLimits(t *testing.T) {
	l := schema.NewLoader()
	load := func(files fstest.MapFS) []string { return loadErrors(t, l, files) }

	got := load(fstest.MapFS{"big.yaml": {Data: []byte(bigHardware(60_000, 1))}})
	require.Equal(t, []string{"big.yaml:5:3: metadata.labels: 60000 entries; the limit is 256"}, got)

	got = load(fstest.MapFS{"big.yaml": {Data: []byte(bigHardware(1, 65))}})
	require.Equal(t, []string{"big.yaml:8:3: spec.interfaces: 65 items; the limit is 64"}, got)

	// Any other mapping or list: 1,000 entries.
	custom := "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: c}\nspec:\n  metadata:\n    custom:\n" + strings.Repeat("      - x\n", 1001)
	got = load(fstest.MapFS{"c.yaml": {Data: []byte(custom)}})
	require.Equal(t, []string{"c.yaml:6:5: spec.metadata.custom: 1001 items; the limit is 1000"}, got)

	// Many small lists: the object's values are bounded as a whole.
	var many strings.Builder
	many.WriteString("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: m}\nspec:\n  metadata:\n    custom:\n")
	for range 900 {
		many.WriteString("      - [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x]\n")
	}
	got = load(fstest.MapFS{"m.yaml": {Data: []byte(many.String())}})
	require.Len(t, got, 1)
	require.Contains(t, got[0], "the object holds more than 20000 values")

	// A rendered template's lists.
	var tmpl strings.Builder
	tmpl.WriteString("version: \"0.1\"\nname: t\nglobal_timeout: 60\ntasks:\n{{- range until 65 }}\n  - name: t{{ . }}\n    worker: \"{{ $.device_1 }}\"\n    actions: [{name: a, image: busybox, timeout: 1}]\n{{- end }}\n")
	files := fstest.MapFS{
		"templates/t.yaml": {Data: []byte(tmpl.String())},
		"hw.yaml":          {Data: []byte(bigHardware(1, 1))},
		"wf.yaml":          {Data: []byte("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec: {templateRef: t, hardwareRef: big, hardwareMap: {device_1: \"52:54:00:00:00:00\"}}\n")},
	}
	got = load(files)
	require.Len(t, got, 1)
	require.Contains(t, got[0], "spec.data: tasks: 65 tasks; the limit is 64")

	// Within the limits: fine.
	_, err := l.Load(t.Context(), fstest.MapFS{"big.yaml": {Data: []byte(bigHardware(schema.MaxLabels, schema.MaxInterfaces))}})
	require.NoError(t, err)
}
