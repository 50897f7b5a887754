package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/state/badger"
)

// openAPIFile is the API's description, next to the route table it
// describes.
const openAPIFile = "openapi.yaml"

// openAPIDoc is the part of an OpenAPI document the checks read.
type openAPIDoc struct {
	OpenAPI    string                 `yaml:"openapi"`
	Paths      map[string]openAPIPath `yaml:"paths"`
	Components openAPIComponents      `yaml:"components"`
	Security   []map[string][]string  `yaml:"security"`
}

type openAPIComponents struct {
	Parameters      map[string]openAPIParam `yaml:"parameters"`
	SecuritySchemes map[string]struct {
		Type   string `yaml:"type"`
		Scheme string `yaml:"scheme"`
	} `yaml:"securitySchemes"`
}

// openAPIPath is a path item: its shared parameters and an operation per
// method.
type openAPIPath struct {
	Parameters []openAPIParam `yaml:"parameters"`
	Get        *openAPIOp     `yaml:"get"`
	Put        *openAPIOp     `yaml:"put"`
	Post       *openAPIOp     `yaml:"post"`
	Delete     *openAPIOp     `yaml:"delete"`
	Patch      *openAPIOp     `yaml:"patch"`
	Head       *openAPIOp     `yaml:"head"`
	Options    *openAPIOp     `yaml:"options"`
	Trace      *openAPIOp     `yaml:"trace"`
}

// ops returns the path's operations by HTTP method.
func (p openAPIPath) ops() map[string]*openAPIOp {
	out := map[string]*openAPIOp{}
	for m, op := range map[string]*openAPIOp{
		http.MethodGet: p.Get, http.MethodPut: p.Put, http.MethodPost: p.Post, http.MethodDelete: p.Delete,
		http.MethodPatch: p.Patch, http.MethodHead: p.Head, http.MethodOptions: p.Options, http.MethodTrace: p.Trace,
	} {
		if op != nil {
			out[m] = op
		}
	}
	return out
}

type openAPIOp struct {
	OperationID   string                 `yaml:"operationId"`
	Summary       string                 `yaml:"summary"`
	Description   string                 `yaml:"description"`
	Role          string                 `yaml:"x-tink-role"`
	HardwareParam string                 `yaml:"x-tink-hardware-param"`
	Parameters    []openAPIParam         `yaml:"parameters"`
	Responses     map[string]any         `yaml:"responses"`
	Security      *[]map[string][]string `yaml:"security"`
}

type openAPIParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

// loadOpenAPI reads and decodes openapi.yaml, and returns it also as a
// generic tree for resolving references.
func loadOpenAPI(t *testing.T) (*openAPIDoc, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(openAPIFile)
	require.NoError(t, err)
	var doc openAPIDoc
	require.NoError(t, yaml.Unmarshal(b, &doc), "%s does not decode", openAPIFile)
	var tree map[string]any
	require.NoError(t, yaml.Unmarshal(b, &tree))
	return &doc, tree
}

// servedRoutes returns the routes a Server registers with its router.
func servedRoutes(t *testing.T) []route {
	t.Helper()
	st, err := badger.Open(context.Background(), t.TempDir(), badger.Options{
		CompactInterval: -1, GCInterval: -1, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	s, err := New(Config{Store: st})
	require.NoError(t, err)
	require.NotEmpty(t, s.routes)
	return s.routes
}

// openAPIPathOf turns an httprouter path into OpenAPI's: /v1/hardware/:name
// becomes /v1/hardware/{name}.
func openAPIPathOf(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// routeParams returns the path parameters of an httprouter path.
func routeParams(path string) []string {
	var out []string
	for _, p := range strings.Split(path, "/") {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			out = append(out, p[1:])
		}
	}
	return out
}

// roleName is a role as openapi.yaml spells it.
func roleName(r Role) string {
	if r == RolePublic {
		return "public"
	}
	return string(r)
}

// checkOpenAPI compares the routes with the document and returns every
// difference, each naming the route and what to fix.
func checkOpenAPI(routes []route, doc *openAPIDoc) []string {
	var problems []string
	inRouter := map[string]route{}
	for _, rt := range routes {
		inRouter[rt.method+" "+openAPIPathOf(rt.path)] = rt
	}
	inDoc := map[string]*openAPIOp{}
	docPath := map[string]openAPIPath{}
	for path, item := range doc.Paths {
		for method, op := range item.ops() {
			inDoc[method+" "+path] = op
			docPath[method+" "+path] = item
		}
	}

	var undocumented, unrouted []string
	for k := range inRouter {
		if inDoc[k] == nil {
			undocumented = append(undocumented, k)
		}
	}
	for k := range inDoc {
		if _, ok := inRouter[k]; !ok {
			unrouted = append(unrouted, k)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unrouted)
	if len(undocumented) > 0 {
		problems = append(problems, fmt.Sprintf("routes missing from api/%s (describe them there): %s", openAPIFile, strings.Join(undocumented, ", ")))
	}
	if len(unrouted) > 0 {
		problems = append(problems, fmt.Sprintf("operations in api/%s that the router does not serve (remove them or add the routes): %s", openAPIFile, strings.Join(unrouted, ", ")))
	}

	keys := make([]string, 0, len(inRouter))
	for k := range inRouter {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	opIDs := map[string]string{}
	for _, k := range keys {
		rt, op := inRouter[k], inDoc[k]
		if op == nil {
			continue
		}
		role := roleName(rt.role)
		if op.Role != role {
			problems = append(problems, fmt.Sprintf("%s: x-tink-role is %q, the route needs %q", k, op.Role, role))
		}
		if !strings.Contains(op.Description, "Role: "+role) {
			problems = append(problems, fmt.Sprintf("%s: the description does not say \"Role: %s\"", k, role))
		}
		if op.HardwareParam != rt.hardwareParam {
			problems = append(problems, fmt.Sprintf("%s: x-tink-hardware-param is %q, the route's is %q", k, op.HardwareParam, rt.hardwareParam))
		}
		if op.Summary == "" {
			problems = append(problems, k+": no summary")
		}
		if op.OperationID == "" {
			problems = append(problems, k+": no operationId")
		} else if other, dup := opIDs[op.OperationID]; dup {
			problems = append(problems, fmt.Sprintf("%s: operationId %q is also %s's", k, op.OperationID, other))
		}
		opIDs[op.OperationID] = k
		if !hasSuccess(op.Responses) {
			problems = append(problems, k+": no 2xx response")
		}
		public := op.Security != nil && len(*op.Security) == 0
		switch {
		case rt.role == RolePublic && !public:
			problems = append(problems, k+": a public route must set security: []")
		case rt.role != RolePublic && public:
			problems = append(problems, k+": the route needs a token but security is []")
		case rt.role != RolePublic && (op.Responses["401"] == nil || op.Responses["403"] == nil):
			problems = append(problems, k+": a route that needs a token must list 401 and 403")
		}

		params := resolveParams(doc, docPath[k].Parameters, op.Parameters)
		want := routeParams(rt.path)
		for _, name := range want {
			p, ok := params[name]
			if !ok || p.In != "path" || !p.Required {
				problems = append(problems, fmt.Sprintf("%s: path parameter %q is not described (in: path, required: true)", k, name))
			}
		}
		for name, p := range params {
			if p.In == "path" && !slices.Contains(want, name) {
				problems = append(problems, fmt.Sprintf("%s: path parameter %q is not in the route", k, name))
			}
		}
	}
	return problems
}

func hasSuccess(responses map[string]any) bool {
	for code := range responses {
		if strings.HasPrefix(code, "2") {
			return true
		}
	}
	return false
}

// resolveParams merges a path item's and an operation's parameters (the
// operation's win), resolving references to components.parameters. A
// reference that does not resolve is left out, so that the parameter shows
// as missing.
func resolveParams(doc *openAPIDoc, lists ...[]openAPIParam) map[string]openAPIParam {
	out := map[string]openAPIParam{}
	for _, list := range lists {
		for _, p := range list {
			if p.Ref != "" {
				var ok bool
				if p, ok = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]; !ok {
					continue
				}
			}
			if p.In == "path" || p.In == "query" || p.In == "header" {
				out[p.Name] = p
			}
		}
	}
	return out
}

// brokenRefs returns every $ref in the tree that does not point at
// something in the document.
func brokenRefs(tree map[string]any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && lookup(tree, ref) == nil {
				out = append(out, ref)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(tree)
	sort.Strings(out)
	return slices.Compact(out)
}

// lookup resolves a local JSON pointer such as #/components/schemas/Object.
func lookup(tree map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = tree
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	return cur
}

// TestOpenAPIDescribesEveryRoute: api/openapi.yaml describes exactly the
// routes the server serves (both ways), with the role each needs and its
// path parameters, so that the description cannot drift from the router.
// A new route fails this test until it is documented.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, tree := loadOpenAPI(t)
	require.Equal(t, "3.0.3", doc.OpenAPI)
	bearer, ok := doc.Components.SecuritySchemes["bearerAuth"]
	require.True(t, ok, "components.securitySchemes.bearerAuth")
	require.Equal(t, "http", bearer.Type)
	require.Equal(t, "bearer", bearer.Scheme)
	require.Equal(t, []map[string][]string{{"bearerAuth": {}}}, doc.Security, "routes need the bearer token unless they say otherwise")
	require.Empty(t, brokenRefs(tree), "references that point nowhere")

	routes := servedRoutes(t)
	problems := checkOpenAPI(routes, doc)
	require.Empty(t, problems, "api/%s and the route table (api/routes.go) differ:\n%s", openAPIFile, strings.Join(problems, "\n"))
}

// TestOpenAPICheckFindsDifferences: the comparison above reports a route
// that is not documented, an operation without a route, a wrong role and a
// path parameter the operation lacks; so the test above fails when someone
// adds a route without describing it.
func TestOpenAPICheckFindsDifferences(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	// Start from the routes the document describes, so that each case
	// below shows its own difference only, whatever the route table holds
	// today (TestOpenAPIDescribesEveryRoute reports the rest).
	var routes []route
	for _, rt := range servedRoutes(t) {
		if item, ok := doc.Paths[openAPIPathOf(rt.path)]; ok && item.ops()[rt.method] != nil {
			routes = append(routes, rt)
		}
	}
	require.Empty(t, checkOpenAPI(routes, doc))

	t.Run("ErrUndocumentedRoute", func(t *testing.T) {
		added := append(slices.Clone(routes), route{method: http.MethodPost, path: "/v1/hardware/:name/reboot", role: RoleOperator})
		problems := checkOpenAPI(added, doc)
		require.Len(t, problems, 1, "%v", problems)
		require.Contains(t, problems[0], "routes missing from api/openapi.yaml")
		require.Contains(t, problems[0], "POST /v1/hardware/{name}/reboot")
	})
	t.Run("ErrUnroutedOperation", func(t *testing.T) {
		i := slices.IndexFunc(routes, func(rt route) bool { return rt.method == http.MethodPost && rt.path == "/v1/sync" })
		require.GreaterOrEqual(t, i, 0)
		problems := checkOpenAPI(slices.Delete(slices.Clone(routes), i, i+1), doc)
		require.Len(t, problems, 1, "%v", problems)
		require.Contains(t, problems[0], "that the router does not serve")
		require.Contains(t, problems[0], "POST /v1/sync")
	})
	t.Run("ErrRole", func(t *testing.T) {
		changed := slices.Clone(routes)
		i := slices.IndexFunc(changed, func(rt route) bool { return rt.method == http.MethodDelete && rt.path == "/v1/hardware/:name" })
		require.GreaterOrEqual(t, i, 0)
		changed[i].role = RoleOperator
		problems := strings.Join(checkOpenAPI(changed, doc), "\n")
		require.Contains(t, problems, `DELETE /v1/hardware/{name}: x-tink-role is "admin", the route needs "operator"`)
		require.Contains(t, problems, `the description does not say "Role: operator"`)
	})
	t.Run("ErrPathParameter", func(t *testing.T) {
		broken := *doc
		broken.Paths = map[string]openAPIPath{}
		for k, v := range doc.Paths {
			broken.Paths[k] = v
		}
		item := broken.Paths["/v1/workers/{id}/actions/next"]
		item.Parameters = nil
		broken.Paths["/v1/workers/{id}/actions/next"] = item
		problems := strings.Join(checkOpenAPI(routes, &broken), "\n")
		require.Contains(t, problems, `GET /v1/workers/{id}/actions/next: path parameter "id" is not described`)
	})
}
