package schema

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunnersMeterWhatTheTextCalls: a program's template and runners hold
// the functions its text names (in actions, pipelines, branches, ranges
// and defined templates), not the ~200 it could name, and render as
// before.
func TestRunnersMeterWhatTheTextCalls(t *testing.T) {
	r := NewRenderer()
	p, err := r.Parse("t", `{{ upper .x }}{{ if contains "a" .y }}{{ repeat 3 .z | trim }}{{ else }}{{ with .w }}{{ lower . }}{{ end }}{{ end }}`+
		`{{ range $i, $v := .l }}{{ add $i 1 }}{{ end }}{{ define "d" }}{{ b64enc .q }}{{ end }}{{ template "d" . }}{{ len .l }}{{ index .m "k" }}`)
	require.NoError(t, err)
	var names []string
	for name := range p.funcs {
		names = append(names, name)
	}
	slices.Sort(names)
	require.Equal(t, []string{"add", "b64enc", "contains", "lower", "repeat", "trim", "upper"}, names)
	// The template itself carries those functions only: text naming
	// another does not parse in its set.
	_, err = p.tmpl.New("probe").Parse(`{{ lower "A" }}`)
	require.NoError(t, err)
	_, err = p.tmpl.New("probe2").Parse(`{{ snakecase "A" }}`)
	require.ErrorContains(t, err, `function "snakecase" not defined`)
	out, err := r.Execute(context.Background(), p, map[string]any{"x": "a", "y": "bab", "z": "x ", "w": "W", "l": []int{1, 2}, "q": "q", "m": map[string]string{"k": "v"}})
	require.NoError(t, err)
	require.Equal(t, "A"+"x x x"+"12"+"cQ=="+"2"+"v", string(out))
}
