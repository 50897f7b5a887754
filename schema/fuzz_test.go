package schema_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tinkops/tinkops/schema"
)

// FuzzLoad feeds arbitrary bytes to Load as a new object file, as the
// repository's template, or as its tink.cue, next to a valid repository.
// Load must never panic (a recovered panic shows as "internal error") and
// must return either a Set or an ErrorList. `make fuzz` runs it for
// FUZZTIME; `make test` runs the seed corpus.
func FuzzLoad(f *testing.F) {
	base := readTree(f, filepath.Join("testdata", "base"))
	for _, root := range []string{filepath.Join("testdata", "invalid"), filepath.Join("..", "examples", "repo")} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, "errors.txt") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil || len(b) > 64<<10 {
				return nil
			}
			mode := uint8(0)
			switch {
			case strings.HasSuffix(p, "tink.cue"):
				mode = 3
			case strings.HasSuffix(p, ".cue"):
				mode = 1
			case strings.Contains(p, "templates"):
				mode = 2
			}
			f.Add(mode, b)
			return nil
		})
	}
	f.Add(uint8(0), []byte("apiVersion: v1\nkind: List\nitems: [{kind: Hardware, apiVersion: tinkerbell.org/v1alpha1, metadata: {name: x}, status: {}}]\n"))
	f.Add(uint8(0), []byte("a: &a [*a]\n"))
	f.Add(uint8(2), []byte("version: \"0.1\"\nname: x\ntasks:\n- name: t\n  worker: {{.device_1}}\n  actions: [{name: a, image: a, timeout: {{ repeat 10 \"9\" }}}]\n"))

	l := schema.NewLoader()
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		fsys := fstest.MapFS{}
		for k, v := range base {
			fsys[k] = v
		}
		switch mode % 4 {
		case 0:
			fsys["fuzz/object.yaml"] = &fstest.MapFile{Data: data}
		case 1:
			fsys["fuzz/object.cue"] = &fstest.MapFile{Data: data}
		case 2:
			fsys["templates/provision.yaml"] = &fstest.MapFile{Data: data}
		case 3:
			fsys["tink.cue"] = &fstest.MapFile{Data: data}
		}
		// A small input that takes seconds is an attack on the server (it
		// loads every commit pushed); the bound is far above any real
		// input's time, so it only catches pathological ones.
		start := time.Now()
		set, err := l.Load(context.Background(), fsys)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Load took %s on a %d-byte input", d, len(data))
		}
		if err == nil {
			if set == nil {
				t.Fatal("nil set without error")
			}
			return
		}
		var list schema.ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("want an ErrorList, got %T: %v", err, err)
		}
		for _, e := range list {
			if strings.Contains(e.Message, "internal error") {
				t.Fatalf("panic while loading: %v", e)
			}
			if e.File == "" || e.Message == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
	})
}

func readTree(tb testing.TB, dir string) fstest.MapFS {
	tb.Helper()
	out := fstest.MapFS{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
