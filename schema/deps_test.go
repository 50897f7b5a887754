package schema_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoOtherPackageOfOurs enforces DESIGN.md's dependency rule: schema
// is the declared model; the reconciler, API and CLI depend on it, not the reverse.
func TestImportsNoOtherPackageOfOurs(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range parsed.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			require.False(t, strings.HasPrefix(path, "github.com/tinkops/tinkops"), "%s imports %s", f, path)
		}
		checked++
	}
	require.NotZero(t, checked)
}
