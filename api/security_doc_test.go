package api_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/apitest"
)

// TestSecurityDocMatchesRoutes: the table of routes and roles in
// SECURITY.md is the router's, row for row, so the document operators
// read to decide who gets which token stays true when a route is added or
// its role changes.
func TestSecurityDocMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../SECURITY.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([A-Z]+) (/[^`]*)` \\| ([a-z]+)")
	var doc []string
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		role := m[3]
		if role == "public" {
			role = string(api.RolePublic)
		}
		path := regexp.MustCompile(`\{(\w+)\}`).ReplaceAllString(m[2], ":$1")
		doc = append(doc, m[1]+" "+path+" "+role)
	}
	s := apitest.MustRunServer(t)
	var served []string
	for _, rt := range s.API.Routes() {
		served = append(served, rt.Method+" "+rt.Path+" "+string(rt.Role))
	}
	sort.Strings(doc)
	sort.Strings(served)
	require.Equal(t, strings.Join(served, "\n"), strings.Join(doc, "\n"), "SECURITY.md's table of routes and roles (left: the router)")
}
