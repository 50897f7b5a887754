package schema

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// listFiles returns the object files of fsys in a stable order. Hidden
// directories (.git, .github), cue.mod and the config's ignore patterns are
// skipped. It walks as fs.WalkDir does, but joins names by concatenation:
// WalkDir's path.Join cleans every path, a third of a commit's Load of a
// 20,000-file repository, and names read from a directory are single
// elements already.
func listFiles(fsys fs.FS, cfg *Config) ([]string, ErrorList) {
	var files []string
	var list ErrorList
	info, err := fs.Stat(fsys, ".")
	if err != nil {
		list = append(list, &Error{Pos: Pos{File: "."}, Message: "cannot read: " + err.Error()})
		return nil, list
	}
	if !info.IsDir() {
		return nil, nil // as fs.WalkDir: a root that is a file holds no object files
	}
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			// As fs.WalkDir: reported, and the directory skipped.
			list = append(list, &Error{Pos: Pos{File: dir}, Message: "cannot read: " + err.Error()})
			return
		}
		for _, d := range entries {
			name := d.Name()
			p := name
			if dir != "." {
				p = dir + "/" + name
			}
			if d.IsDir() {
				if strings.HasPrefix(name, ".") || name == "cue.mod" || ignored(cfg, p+"/") {
					continue
				}
				walk(p)
				continue
			}
			if p == ConfigFile || strings.HasPrefix(name, ".") || ignored(cfg, p) {
				continue
			}
			switch strings.ToLower(path.Ext(name)) {
			case ".yaml", ".yml", ".json", ".cue":
				files = append(files, p)
			}
		}
	}
	walk(".")
	sort.Strings(files)
	return files, list
}

// ignored matches p against tink.cue's ignore patterns.
func ignored(cfg *Config, p string) bool {
	if cfg == nil {
		return false
	}
	for _, pat := range cfg.Ignore {
		if dir, ok := strings.CutSuffix(pat, "/**"); ok {
			if strings.HasPrefix(p, dir+"/") {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pat, strings.TrimSuffix(p, "/")); ok {
			return true
		}
	}
	return false
}

// readFile reads one file within the limits.
func readFile(fsys fs.FS, name string) ([]byte, *Error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, &Error{Pos: Pos{File: name}, Message: "cannot read: " + err.Error()}
	}
	defer f.Close()
	size := int64(512)
	if st, err := f.Stat(); err == nil {
		if st.Size() > MaxFileSize {
			return nil, &Error{Pos: Pos{File: name}, Message: fmt.Sprintf("file is %s; the limit is 1 MiB (split it into several files)", humanSize(st.Size()))}
		}
		size = st.Size() + 1 // one byte more, so the read that sees EOF needs no new buffer
	}
	b, err := readAllSized(io.LimitReader(f, MaxFileSize+1), size)
	if err != nil {
		return nil, &Error{Pos: Pos{File: name}, Message: "cannot read: " + err.Error()}
	}
	if len(b) > MaxFileSize {
		return nil, &Error{Pos: Pos{File: name}, Message: "file is larger than 1 MiB (split it into several files)"}
	}
	if !utf8.Valid(b) {
		line, col := invalidUTF8At(b)
		return nil, &Error{Pos: Pos{File: name, Line: line, Column: col}, Message: "file is not valid UTF-8 text"}
	}
	return b, nil
}

// readAllSized is io.ReadAll starting from a buffer of the expected size.
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func humanSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// invalidUTF8At finds the line and column of the first byte that is not
// UTF-8.
func invalidUTF8At(b []byte) (line, col int) {
	line, col = 1, 1
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		b = b[size:]
	}
	return line, col
}
