package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/tinkops/tinkops/schema"
)

// FuzzRender parses and renders arbitrary template text for a machine, as
// a workflow run does. Whatever the text, the rendering ends within its
// budget (steps, data through functions, depth, time) with an output no
// larger than MaxRenderSize or an error, and never panics. `make fuzz`
// runs it; `make test` runs the seed corpus (here and in
// testdata/fuzz/FuzzRender).
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"version: \"0.1\"\nname: {{ .device_1 }}\n",
		"{{ index .Hardware.Disks 0 | formatPartition 1 }}",
		"{{ range until 100000 }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}",
		"{{ $s := \"ab\" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}{{ $s }}",
		"{{ define \"a\" }}{{ template \"a\" . }}{{ template \"a\" . }}{{ end }}{{ template \"a\" . }}",
		"{{ range 1000000 }}x{{ end }}",
		"{{ toYaml .hardware }}{{ .Hardware.Metadata | toJson }}",
		"{{ fromYaml \"a: [1, 2]\" | toJson }}",
		"{{ netmaskToPrefixLength \"255.255.255.0\" }}",
	} {
		f.Add(s)
	}
	r := schema.NewRenderer()
	hw := &schema.Hardware{Metadata: schema.ObjectMeta{Name: "node-01"}, Spec: schema.HardwareSpec{
		Disks:      []schema.Disk{{Device: "/dev/sda"}},
		Interfaces: []schema.Interface{{DHCP: &schema.DHCP{MAC: "52:54:00:00:00:01"}}},
	}}
	data := schema.TemplateData(hw, map[string]string{"device_1": "52:54:00:00:00:01"})
	f.Fuzz(func(t *testing.T, text string) {
		p, err := r.Parse("t", text)
		if err != nil {
			return
		}
		// Far above the budget's own 10 s: a rendering that reaches it
		// escaped its budget.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		out, err := r.Execute(ctx, p, data)
		if ctx.Err() != nil {
			t.Fatalf("rendering outlived its budget (%s): %q", time.Since(start), text)
		}
		if err == nil && len(out) > schema.MaxRenderSize {
			t.Fatalf("rendered %d bytes, over the cap", len(out))
		}
	})
}
