package schema

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Pos is a place in a repository file. Line and Column are 1-based; zero
// means unknown (the error is about the file as a whole).
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// String prints the position as editors and CI annotations expect it:
// file:line:column, leaving out what is unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
}

// Error is one mistake in a repository: where it is, which field, and what is
// wrong in words an operator can act on.
type Error struct {
	Pos
	// Path is the field path inside the object, e.g.
	// spec.interfaces[0].dhcp.mac; empty for file-level errors.
	Path string `json:"path,omitempty"`
	// Object names the object at fault (Kind/name) when known; it helps
	// when one file holds many documents.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
}

// Error prints file:line:col: path: message, the format of every tool an
// operator already reads.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every mistake Load found. It is returned whole so an operator
// fixes a pull request in one round, not one error per push.
type ErrorList []*Error

// Error prints one error per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// MarshalJSON keeps an empty list as [] rather than null, which CI scripts
// parse more easily.
func (l ErrorList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]*Error(l))
}

// sort orders errors by file, line, column, path and message, and drops
// exact duplicates (one template rendered for many workflows gives the same
// mistake many times).
func (l ErrorList) sort() ErrorList {
	l.shorten()
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
	out := l[:0]
	for i, e := range l {
		if i > 0 && *e == *l[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// errs collects errors for one unit of work (a file, an object); it is not
// safe for concurrent use, each goroutine owns its own.
type errs struct {
	list ErrorList
}

func (c *errs) add(pos Pos, path, format string, args ...any) {
	c.list = append(c.list, &Error{Pos: pos, Path: path, Message: fmt.Sprintf(format, args...)})
}

// on adds an error about object o.
func (c *errs) on(o Object, pos Pos, path, format string, args ...any) {
	c.list = append(c.list, &Error{Pos: pos, Path: path, Object: o.GetKind() + "/" + objectName(o), Message: fmt.Sprintf(format, args...)})
}

// maxExcerpt bounds how much of one repository value an error may quote,
// and maxMessage a whole message. A file that is not what it claims (a
// link to a secret, a key pasted into the wrong file) must not be shown to
// everyone who can read the status, events or logs: an error quotes a
// short, escaped beginning of a value, enough to find it, never the value.
const (
	maxExcerpt = 24
	maxMessage = 600
)

// excerpt quotes the beginning of s, escaped.
func excerpt(s string) string {
	if len(s) <= maxExcerpt {
		return strconv.Quote(s)
	}
	cut := maxExcerpt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// shortenQuotes cuts every quoted string ("..." or `...`) of a message to
// an excerpt, and the message to maxMessage bytes: messages of CUE, YAML
// and text/template quote what they failed on, whatever its length.
func shortenQuotes(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		c := msg[i]
		if c != '"' && c != '`' {
			b.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		for j < len(msg) && msg[j] != c {
			if c == '"' && msg[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(msg) {
			b.WriteString(msg[i:]) // unbalanced: not a quotation
			break
		}
		q := msg[i : j+1]
		if len(q) > maxExcerpt+2 {
			s, err := strconv.Unquote(q)
			if err != nil {
				s = q[1 : len(q)-1]
			}
			q = excerpt(s)
		}
		b.WriteString(q)
		i = j + 1
	}
	s := b.String()
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// shorten applies shortenQuotes to every message of the list.
func (l ErrorList) shorten() ErrorList {
	for _, e := range l {
		e.Message = shortenQuotes(e.Message)
	}
	return l
}
