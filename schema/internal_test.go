package schema

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"github.com/stretchr/testify/require"
)

// TestLeafCheckMatchesFullCheck: checking values one by one against their
// field's constraint finds exactly what checking whole objects with CUE
// finds, on every broken repository and on the examples.
func TestLeafCheckMatchesFullCheck(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "invalid", "*"))
	require.NoError(t, err)
	dirs = append(dirs, filepath.Join("..", "examples", "repo"), filepath.Join("testdata", "base"))
	leaf, full := NewLoader(), NewLoader()
	full.fullCUE = true
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, errLeaf := leaf.Load(context.Background(), os.DirFS(dir))
			_, errFull := full.Load(context.Background(), os.DirFS(dir))
			require.Equal(t, fmtErr(errFull), fmtErr(errLeaf))
		})
	}
	// A repository with many constraint violations in one object, where
	// whole-object CUE is known to drop some (see notes): the leaf check
	// must report at least what the full check does.
	multi := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(multi, "h.yaml"), []byte(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: Bad_Name}
spec:
  bmc: {address: "", protocol: ipmx, port: 0, credentialsRef: x}
  interfaces:
    - dhcp: {mac: "zz", vlan_id: "9999", lease_time: -1, ip: {address: "1.2.3", family: 5}}
`), 0o644))
	_, errLeaf := leaf.Load(context.Background(), os.DirFS(multi))
	_, errFull := full.Load(context.Background(), os.DirFS(multi))
	for _, line := range strings.Split(fmtErr(errFull), "\n") {
		require.Contains(t, fmtErr(errLeaf), line)
	}
	require.Len(t, strings.Split(fmtErr(errLeaf), "\n"), 9)
}

func fmtErr(err error) string {
	var l ErrorList
	if errors.As(err, &l) {
		return l.Error()
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

// TestGoTypesMatchDefinitions: the decoder's Go types and the CUE
// definitions name the same fields with the same required-ness, so the
// decoder's unknown-field and missing-field errors are CUE's closedness and
// required fields, and the leaf check may rely on them.
func TestGoTypesMatchDefinitions(t *testing.T) {
	d, err := compileDefinitions(newMessages(), &leafResults{})
	require.NoError(t, err)
	var ti typeInfos
	for kind, goType := range map[string]reflect.Type{
		"#Hardware":         reflect.TypeFor[Hardware](),
		"#Template":         reflect.TypeFor[Template](),
		"#Workflow":         reflect.TypeFor[Workflow](),
		"#Machine":          reflect.TypeFor[Machine](),
		"#TemplateDocument": reflect.TypeFor[TemplateDocument](),
		"#Config":           reflect.TypeFor[Config](),
	} {
		def := d.root.LookupPath(cue.ParsePath(kind))
		require.True(t, def.Exists(), kind)
		compareStruct(t, &ti, kind, def, goType, 0)
	}
}

func compareStruct(t *testing.T, ti *typeInfos, at string, def cue.Value, typ reflect.Type, depth int) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	require.Less(t, depth, 12, at)
	switch typ.Kind() {
	case reflect.Struct:
		si := ti.of(typ)
		goFields := map[string]bool{}
		for _, f := range si.fields {
			goFields[f.name] = true
			child, required := lookupField(def, f.name)
			require.True(t, child.Exists(), "%s.%s is a Go field but not in the CUE definition", at, f.name)
			require.Equal(t, required, f.required, "%s.%s: required in CUE (%v) vs Go (%v)", at, f.name, required, f.required)
			compareStruct(t, ti, at+"."+f.name, child, typ.FieldByIndex(f.index).Type, depth+1)
		}
		it, err := def.Fields(cue.Optional(true))
		require.NoError(t, err, at)
		for it.Next() {
			name := it.Selector().Unquoted()
			require.True(t, goFields[name], "%s.%s is in the CUE definition but not a Go field", at, name)
		}
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Struct || (typ.Elem().Kind() == reflect.Pointer && typ.Elem().Elem().Kind() == reflect.Struct) {
			elem := def.LookupPath(cue.MakePath(cue.AnyIndex))
			require.True(t, elem.Exists(), "%s: list element", at)
			compareStruct(t, ti, at+"[]", elem, typ.Elem(), depth+1)
		}
	case reflect.Map:
		if typ.Elem().Kind() == reflect.Struct {
			elem := def.LookupPath(cue.MakePath(cue.AnyString))
			require.True(t, elem.Exists(), "%s: map value", at)
			compareStruct(t, ti, at+".*", elem, typ.Elem(), depth+1)
		}
	}
}

// lookupField finds a field of a definition and says whether it is required.
func lookupField(def cue.Value, name string) (cue.Value, bool) {
	it, err := def.Fields(cue.Optional(true))
	if err != nil {
		return cue.Value{}, false
	}
	for it.Next() {
		sel := it.Selector()
		if sel.Unquoted() == name {
			return it.Value(), sel.ConstraintType() == cue.RequiredConstraint
		}
	}
	return cue.Value{}, false
}

// TestPatternNames: every regular expression in the definitions has a plain
// description for error messages.
func TestPatternNames(t *testing.T) {
	re := regexp.MustCompile(`=~"((?:[^"\\]|\\.)*)"`)
	names := patternNames()
	for _, m := range re.FindAllStringSubmatch(string(Definitions()), -1) {
		pattern := strings.ReplaceAll(m[1], `\\`, `\`)
		require.Contains(t, names, pattern)
	}
}
