package schema_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// TestRenderBudget: templates that would loop, recurse or grow without end
// stop with an error that names the template line, well before they hurt
// the server.
func TestRenderBudget(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"NestedRangesOverFunctions", "a\n{{ range until 100000 }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}", "t:2:"},
		{"NestedRangesOverAVariable", "{{ $l := until 1000 }}\n\n{{ range $l }}{{ range $l }}{{ range $l }}{{ end }}{{ end }}{{ end }}", "t:3:"},
		{"NestedRangesOverIntegers", "{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}", "t:1:"},
		{"StringDoubling", "{{ $s := \"xx\" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}", "data passed through functions"},
		{"StringDoublingWithSprig", "{{ $s := \"xx\" }}{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}", "data passed through functions"},
		{"ScanningABigStringOverAndOver", "{{ $s := repeat 200000 \"a\" }}{{ range until 90000 }}{{ if regexMatch \"b\" $s }}{{ end }}{{ end }}", "data passed through functions"},
		{"DictInItself", "{{ $d := dict }}{{ $_ := set $d \"a\" (list 1 (dict \"b\" $d)) }}{{ print $d }}", "a dict cannot contain itself"},
		{"DictMergedIntoItself", "{{ $d := dict \"x\" 1 }}{{ $e := dict \"d\" $d }}{{ $_ := mergeOverwrite $d $e }}{{ print $d }}", "a dict cannot contain itself"},
		{"IndentByABillion", "{{ indent 1000000000 \"x\" }}", "indent would build a value of"},
		{"ReplaceEmpty", "{{ $s := repeat 200000 \"a\" }}{{ replace \"\" $s $s }}", "replace would build a value of"},
		{"RegexReplaceEmpty", "{{ $s := repeat 200000 \"a\" }}{{ regexReplaceAll \"\" $s $s }}", "regexReplaceAll would build a value of"},
		{"PrintfWidths", "{{ printf \"%1000000d%1000000d%1000000d%1000000d%1000000d\" 1 2 3 4 5 }}", "printf would build a value of"},
		{"Recursion", "{{ define \"a\" }}{{ template \"a\" . }}{{ end }}{{ template \"a\" . }}", "more than 100 deep"},
		{"ExponentialRecursion", "{{ define \"a\" }}{{ if lt (len .) 60 }}{{ template \"a\" (print . \"x\") }}{{ template \"a\" (print . \"y\") }}{{ end }}{{ end }}{{ template \"a\" \"\" }}", "loop iterations and template calls|took longer than its limit"},
	}
	r := schema.NewRenderer()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := r.Parse("t", c.text)
			require.NoError(t, err)
			_, err = r.Execute(context.Background(), p, map[string]any{})
			require.Error(t, err)
			// Under a heavily loaded machine the 5 s limit may come first.
			require.Regexp(t, c.want, err.Error())
			require.Contains(t, err.Error(), "template: t:", "the error names the template and line")
		})
	}
}

// TestRenderBudgetKeepsTemplatesWorking: the guarded functions work as
// before within their limits.
func TestRenderBudgetKeepsTemplatesWorking(t *testing.T) {
	r := schema.NewRenderer()
	p, err := r.Parse("t", `{{ indent 2 "a\nb" }}|{{ nindent 1 "c" }}|{{ replace "a" "bb" "aXa" }}|{{ regexReplaceAll "a(x*)b" "-axxb-" "${1}W" }}|{{ printf "%05d|%-3s|%.2f" 7 "z" 1.5 }}|{{ wrapWith 2 "+" "abcd" }}|{{ $d := dict "k" 1 }}{{ $_ := set $d "l" (list 1 2) }}{{ toJson $d }}`)
	require.NoError(t, err)
	out, err := r.Execute(context.Background(), p, nil)
	require.NoError(t, err)
	require.Equal(t, "  a\n  b|\n c|bbXbb|-xxW-|00007|z  |1.50|ab+cd|{\"k\":1,\"l\":[1,2]}", string(out))
}

// TestRenderBudgetCancel: a rendering stops when its caller's context ends.
func TestRenderBudgetCancel(t *testing.T) {
	r := schema.NewRenderer()
	p, err := r.Parse("t", "{{ range until 10 }}x{{ end }}")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Execute(ctx, p, nil)
	require.ErrorIs(t, err, context.Canceled)
}

// TestRenderBudgetPerRendering: each rendering has a budget of its own, and
// renderings of one template in parallel do not share it.
func TestRenderBudgetPerRendering(t *testing.T) {
	r := schema.NewRenderer()
	// 60,000 steps: within one budget, over it if two renderings shared one.
	p, err := r.Parse("t", `{{ range until 60000 }}{{ end }}{{ .n }}:{{ upper "ok" }}`)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				out, err := r.Execute(context.Background(), p, map[string]any{"n": i})
				if err == nil && !strings.HasSuffix(string(out), ":OK") {
					err = errors.New("unexpected output " + string(out))
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}
