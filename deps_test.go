package tinkops_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/tinkops/tinkops"

// pkg is what go list says of one package of the module.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // every package it depends on, transitively
}

// ours returns the packages of the module among paths, relative to the
// module ("api/client").
func ours(paths []string) []string {
	var out []string
	for _, p := range paths {
		if rel, ok := strings.CutPrefix(p, module+"/"); ok {
			out = append(out, rel)
		}
	}
	return out
}

// under reports whether rel is dir or a package below it.
func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }

// TestDependencyRules encodes DESIGN.md's rules on which package may use
// which, for the whole module, so a new package is held to them too: data
// flows gitsource -> schema -> reconciler -> state; api reads state and
// steers the reconciler; cmd/* wires; test-support packages (…test) may
// use what they support.
func TestDependencyRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	require.Greater(t, len(pkgs), 10, "go list found the module's packages")

	type rule struct {
		name string
		// applies says whether the rule holds for package rel.
		applies func(rel string) bool
		// transitive checks Deps rather than the direct imports.
		transitive bool
		// forbidden says whether rel may not use dep (both relative).
		forbidden func(dep string) bool
	}
	testSupport := func(rel string) bool { return strings.HasSuffix(rel, "test") }
	rules := []rule{
		{"gitsource imports nothing of ours", func(rel string) bool { return under(rel, "gitsource") && !testSupport(rel) }, true,
			func(dep string) bool { return !under(dep, "gitsource") }},
		{"schema imports no other package of ours", func(rel string) bool { return rel == "schema" }, true,
			func(string) bool { return true }},
		{"state imports no other package of ours", func(rel string) bool { return rel == "state" }, true,
			func(string) bool { return true }},
		{"reconciler does not import api", func(rel string) bool { return under(rel, "reconciler") }, true,
			func(dep string) bool { return under(dep, "api") }},
		{"api does not import a store backend or gitsource", func(rel string) bool { return under(rel, "api") && !testSupport(rel) }, false,
			func(dep string) bool {
				return under(dep, "gitsource") || under(dep, "state") && dep != "state" && !testSupport(dep)
			}},
		{"nothing imports cmd", func(string) bool { return true }, false,
			func(dep string) bool { return under(dep, "cmd") }},
	}
	checked := map[string]int{}
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			continue // the module's root package (this test)
		}
		for _, r := range rules {
			if !r.applies(rel) {
				continue
			}
			checked[r.name]++
			deps := p.Imports
			if r.transitive {
				deps = p.Deps
			}
			for _, dep := range ours(deps) {
				if r.forbidden(dep) {
					t.Errorf("%s: %s uses %s", r.name, rel, dep)
				}
			}
		}
	}
	for _, r := range rules {
		require.NotZero(t, checked[r.name], "rule %q checked no package: a package was renamed?", r.name)
	}
	// The rules can fail: reconciler/workflow does import packages of ours.
	i := slices.IndexFunc(pkgs, func(p pkg) bool { return p.ImportPath == module+"/reconciler/workflow" })
	require.GreaterOrEqual(t, i, 0)
	require.Contains(t, ours(pkgs[i].Deps), "state")
}

// TestMakeFetchesModulesFirst: make build and make test fetch every module
// first (go mod download), so that vet, the tests and the build work
// offline after that step.
func TestMakeFetchesModulesFirst(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make not found: install make (.ci/run does)")
	}
	for _, target := range []string{"build", "test"} {
		cmd := exec.Command("make", "--no-print-directory", "-n", target)
		// Under make test, the outer make's flags would reach this one.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") && !strings.HasPrefix(kv, "MFLAGS=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		require.Contains(t, lines[0], "mod download", "make %s starts by fetching the modules:\n%s", target, out)
	}
}
