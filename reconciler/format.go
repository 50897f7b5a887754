package reconciler

import (
	"fmt"
	"strings"
)

// FormatMarkdown renders a plan as a pull-request comment: the
// consequences on top (what a reviewer must agree to), then a table of
// changes and each change's fields in a collapsed block.
func (p *Plan) FormatMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### tinkops plan for `%s`\n\n", p.Revision)
	if p.Blocked != "" {
		fmt.Fprintf(&b, "> **Blocked:** %s\n\n", p.Blocked)
	}
	if cs := p.Consequences(); len(cs) > 0 {
		b.WriteString("**What happens when this merges:**\n\n")
		for _, c := range cs {
			fmt.Fprintf(&b, "- %s\n", mdEscape(c))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d to create, %d to update, %d to delete, %d unchanged", p.Count(OpCreate), p.Count(OpUpdate), p.Count(OpDelete), p.Unchanged)
	if n := p.Count(OpOrphaned); n > 0 {
		fmt.Fprintf(&b, ", %d no longer in Git but kept", n)
	}
	b.WriteString(".\n")
	if len(p.Changes) == 0 {
		return b.String()
	}
	b.WriteString("\n| | object | file |\n|---|---|---|\n")
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", c.Op, c.Key, mdEscape(c.File))
	}
	for _, c := range p.Changes {
		if len(c.Fields) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n<details><summary>%s <code>%s</code> (%d fields)</summary>\n\n```diff\n", c.Op, c.Key, len(c.Fields))
		for _, f := range c.Fields {
			switch {
			case f.Old == "" && f.New == "":
				fmt.Fprintf(&b, "  %s\n", f.Path)
			case f.Old == "":
				fmt.Fprintf(&b, "+ %s: %s\n", f.Path, f.New)
			case f.New == "":
				fmt.Fprintf(&b, "- %s: %s\n", f.Path, f.Old)
			default:
				fmt.Fprintf(&b, "- %s: %s\n+ %s: %s\n", f.Path, f.Old, f.Path, f.New)
			}
		}
		b.WriteString("```\n\n</details>\n")
	}
	return b.String()
}

// mdEscape keeps text from breaking a Markdown table or list.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
