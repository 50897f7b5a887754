package ui

import (
	"fmt"
	"html/template"
	"slices"
	"sort"
	"strings"
	"time"
)

// funcs are the helpers templates use. They return plain strings: the
// template escapes them where they land.
var funcs = template.FuncMap{
	"pct":        pct,
	"ago":        ago,
	"dur":        dur,
	"when":       when,
	"stateClass": stateClass,
	"labels":     labelList,
	"shortRev":   shortRev,
	"list":       func(s ...string) []string { return s },
	"has":        func(l []string, s string) bool { return slices.Contains(l, s) },
}

// pct is done out of total in percent, for progress bars.
func pct(done, total int) int {
	if total <= 0 {
		return 0
	}
	return done * 100 / total
}

// ago says how long ago t was, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return roughly(time.Since(t)) + " ago"
}

// dur is the time from start to end, or to now while end is not set.
func dur(start, end time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		return roughly(time.Since(start))
	}
	return roughly(end.Sub(start))
}

func roughly(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// when formats a time in UTC.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// stateClass is the CSS class of a run or action state (or power state).
func stateClass(s string) string {
	return "st-" + strings.ToLower(s)
}

// labelList lists labels as sorted key=value strings.
func labelList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// shortRev shortens the commit hash of a revision (main@sha1:0123...) to
// 12 digits for tables; pages show the whole revision in a title.
func shortRev(rev string) string {
	i := strings.LastIndexByte(rev, ':')
	if i < 0 || len(rev)-i-1 <= 12 {
		return rev
	}
	return rev[:i+13]
}
