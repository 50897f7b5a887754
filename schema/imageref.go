package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// imageGrammar is the container image reference grammar of
// github.com/distribution/reference, which Tinkerbell uses to check action
// images: [domain/]path[:tag][@digest].
type imageGrammar struct {
	ref, hexID *regexp.Regexp
}

// newImageGrammar compiles the grammar; a Loader does it once and shares it
// (regexp values are safe for concurrent use).
func newImageGrammar() *imageGrammar {
	const (
		alnum     = `[a-z0-9]+`
		separator = `(?:[._]|__|[-]+)`
		pathComp  = alnum + `(?:` + separator + alnum + `)*`
		domComp   = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domName   = domComp + `(?:\.` + domComp + `)*`
		ipv6      = `\[(?:[a-fA-F0-9:]+)\]`
		domain    = `(?:` + domName + `|` + ipv6 + `)(?::[0-9]+)?`
		name      = `(?:` + domain + `/)?` + pathComp + `(?:/` + pathComp + `)*`
		tag       = `[\w][\w.-]{0,127}`
		digest    = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}`
	)
	return &imageGrammar{
		ref:   regexp.MustCompile(`^(` + name + `)(?::(` + tag + `))?(?:@(` + digest + `))?$`),
		hexID: regexp.MustCompile(`^[a-f0-9]{64}$`),
	}
}

// checkImageRef returns what is wrong with an image reference, or "".
func (g *imageGrammar) check(s string) string {
	switch {
	case s == "":
		return "image must not be empty"
	case g.hexID.MatchString(s):
		return fmt.Sprintf("image %q is a bare image ID; name the repository", s)
	}
	m := g.ref.FindStringSubmatch(s)
	if m == nil {
		if lower := strings.ToLower(s); lower != s && g.ref.MatchString(repoLower(s)) {
			return fmt.Sprintf("image %q: repository name must be lowercase", s)
		}
		return fmt.Sprintf("image %q is not a valid image reference ([registry/]name[:tag][@digest])", s)
	}
	if len(m[1]) > 255 {
		return fmt.Sprintf("image %q: repository name is longer than 255 characters", s)
	}
	return ""
}

// repoLower lowercases the repository part of a reference, leaving a
// domain (which may have capitals) and the tag alone.
func repoLower(s string) string {
	name, rest := s, ""
	if i := strings.IndexAny(s, "@"); i >= 0 {
		name, rest = s[:i], s[i:]
	}
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i:], "/") {
		name, rest = name[:i], name[i:]+rest
	}
	dom := ""
	if i := strings.IndexByte(name, '/'); i >= 0 && (strings.ContainsAny(name[:i], ".:") || name[:i] == "localhost") {
		dom, name = name[:i+1], name[i+1:]
	}
	return dom + strings.ToLower(name) + rest
}
