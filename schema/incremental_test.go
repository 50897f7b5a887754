package schema

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema/schematest"
)

// dumpSet prints everything a Load sets in a Set, object by object in
// order: fields, file and positions, invalid mark, whether defaults were
// applied, and each workflow's rendering. Identities are left out: they
// number decodings, and two Loaders number them apart.
func dumpSet(t *testing.T, s *Set) string {
	t.Helper()
	var b strings.Builder
	obj := func(o Object, src *source, extra any) {
		j, err := json.Marshal(o)
		require.NoError(t, err)
		x, err := json.Marshal(extra)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s %s at=%v spots=%v invalid=%v defaults=%v %s %s\n", o.GetKind(), objectName(o), src.pos, src.spots, src.invalid, src.defaults != 0, j, x)
	}
	for _, o := range s.Hardware {
		obj(o, &o.source, nil)
	}
	for _, o := range s.Templates {
		obj(o, &o.source, []any{o.dataLine, o.dataCol, o.parsed != nil && o.parsed.err == nil})
	}
	for _, o := range s.Workflows {
		obj(o, &o.source, o.Rendered)
	}
	for _, o := range s.Machines {
		obj(o, &o.source, nil)
	}
	for _, o := range s.WorkflowSets {
		obj(o, &o.source, nil)
	}
	cfg, err := json.Marshal(s.Config)
	require.NoError(t, err)
	fmt.Fprintf(&b, "ignored=%d config=%s\n", s.Ignored, cfg)
	return b.String()
}

// TestIncrementalLoadMatchesFull follows a repository through a series of
// commits with one Loader, and after each compares its Load with a full
// Load by a fresh Loader: the same Set (every field, position, rendering)
// or the same errors, word for word. The commits that only change content
// (userData, labels, a template's text, a workflow's options, a Machine,
// tink.cue defaults in force) must take the incremental way; the others
// (a MAC changed, files added or removed, an error anywhere, a reference
// changed) must not, and the Load after each must still agree. A state not
// updated after a commit (stale hashes, objects or renderings) shows as a
// difference at a later step.
func TestIncrementalLoadMatchesFull(t *testing.T) {
	ctx := context.Background()
	files := schematest.Fleet(40, 3)
	files["machines/bmc-07.yaml"] = `apiVersion: bmc.tinkerbell.org/v1alpha1
kind: Machine
metadata: {name: bmc-07}
spec:
  connection:
    host: 10.1.0.7
    authSecretRef: {name: bmc-07, namespace: default}
`
	files["hardware/node-00007.yaml"] = strings.Replace(schematest.Hardware(7, ""), "  bmc:\n    address: 10.250.0.7\n    protocol: ipmi\n    credentialsRef: bmc-00007\n", "  bmcRef: {apiGroup: bmc.tinkerbell.org, kind: Machine, name: bmc-07}\n", 1)
	fsys := fstest.MapFS{}
	written := 0 // files written since the last step
	put := func(name, content string) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
		written++
	}
	for name, content := range files {
		put(name, content)
	}
	written = 0
	l := NewLoader()
	var prev *Set
	step := func(what string, wantIncremental bool) {
		t.Helper()
		before, parsed := l.incremental.Load(), l.parses.Load()
		got, gotErr := l.Load(ctx, hashMapFS{fsys})
		if wantIncremental {
			require.Equal(t, int64(written), l.parses.Load()-parsed, "%s: only the files written are read", what)
		}
		written = 0
		want, wantErr := NewLoader().Load(ctx, hashMapFS{fsys})
		if wantErr != nil {
			require.Error(t, gotErr, what)
			require.Equal(t, wantErr.Error(), gotErr.Error(), what)
		} else {
			require.NoError(t, gotErr, what)
			require.Equal(t, dumpSet(t, want), dumpSet(t, got), what)
			if prev != nil && len(prev.Hardware) > 0 && len(got.Hardware) > 0 {
				require.NotSame(t, prev.Hardware[0], got.Hardware[0], "%s: each Load gets its own objects", what)
			}
			prev = got
		}
		took := l.incremental.Load() > before
		require.Equal(t, wantIncremental, took, "%s: incremental", what)
	}
	_, err := NewLoader().Load(ctx, hashMapFS{fsys})
	require.NoError(t, err, "the repository starts valid")
	step("first load", false)
	step("nothing changed", true)
	put("hardware/node-00003.yaml", schematest.Hardware(3, "hello"))
	step("userData", true)
	prev.Hardware[3].Metadata.Name = "scribbled" // a caller's change must not reach the next Load
	put("hardware/node-00004.yaml", strings.Replace(schematest.Hardware(4, ""), "rack: r4", "rack: r40", 1))
	step("labels", true)
	put("workflows/wf-00005.yaml", strings.Replace(files["workflows/wf-00005.yaml"], "toggleAllowNetboot: true", "toggleAllowNetboot: false", 1))
	step("workflow options", true)
	put("templates/tmpl-001.yaml", strings.Replace(files["templates/tmpl-001.yaml"], "timeout: 600", "timeout: 700", 1))
	step("template text", true)
	put("machines/bmc-07.yaml", strings.Replace(files["machines/bmc-07.yaml"], "10.1.0.7", "10.1.0.77", 1))
	step("machine", true)
	put("hardware/node-00003.yaml", schematest.Hardware(3, "again"))
	put("workflows/wf-00009.yaml", strings.Replace(files["workflows/wf-00009.yaml"], "bootMode: netboot", "bootMode: netboot\n    toggleAllowNetboot: false", 1))
	step("two files", false) // a duplicate key in the workflow: an error
	put("workflows/wf-00009.yaml", files["workflows/wf-00009.yaml"])
	step("fixed", false)
	step("nothing changed after a full load", true)

	put("hardware/node-00006.yaml", strings.Replace(schematest.Hardware(6, ""), schematest.MAC(6), "52:54:00:00:99:06", 1))
	step("a MAC changed: the workflow's hardwareMap no longer matches", false)
	put("workflows/wf-00006.yaml", strings.Replace(files["workflows/wf-00006.yaml"], schematest.MAC(6), "52:54:00:00:99:06", 1))
	step("and fixed", false)
	put("hardware/node-00008.yaml", strings.Replace(schematest.Hardware(8, ""), "address: 10.0.0.8", "address: 10.0.0.9", 1))
	step("duplicate IP", false)
	put("hardware/node-00008.yaml", schematest.Hardware(8, ""))
	step("IP fixed", false)
	put("hardware/node-00008.yaml", strings.Replace(schematest.Hardware(8, ""), "address: 10.250.0.8", "address: 10.250.0.88", 1))
	step("BMC address", true)
	put("templates/tmpl-002.yaml", strings.Replace(files["templates/tmpl-002.yaml"], "timeout: 600", "timeout: -5", 1))
	step("template renders wrong", false)
	put("templates/tmpl-002.yaml", files["templates/tmpl-002.yaml"])
	step("template fixed", false)
	put("hardware/node-00010.yaml", strings.Replace(schematest.Hardware(10, ""), "protocol: ipmi", "protocol: ipmx", 1))
	step("hardware invalid", false)
	put("hardware/node-00010.yaml", schematest.Hardware(10, ""))
	step("hardware fixed", false)

	put("templates/unused.yaml", strings.Replace(files["templates/tmpl-000.yaml"], "name: tmpl-000", "name: unused", 1))
	step("file added", false)
	put("templates/unused.yaml", strings.Replace(strings.Replace(files["templates/tmpl-000.yaml"], "name: tmpl-000", "name: unused", 1), "timeout: 90", "timeout: 95", 1))
	step("unused template changed", true)
	put("templates/unused.yaml", strings.Replace(strings.Replace(files["templates/tmpl-000.yaml"], "name: tmpl-000", "name: unused", 1), "timeout: 90", "timeuot: 95", 1))
	step("unused template with an unknown key", false)
	delete(fsys, "templates/unused.yaml")
	step("file removed", false)
	put("workflows/wf-00011.yaml", strings.Replace(files["workflows/wf-00011.yaml"], "templateRef: tmpl-002", "templateRef: tmpl-001", 1))
	step("reference changed", false)

	put("tink.cue", "defaults: {namespace: \"dc1\", labels: {site: \"x\"}, bmc: {port: 1623}}\n")
	step("defaults", false)
	put("hardware/node-00012.yaml", schematest.Hardware(12, "with defaults"))
	step("change under defaults", true)
	put("tink.cue", "defaults: {namespace: \"dc1\", labels: {site: \"y\"}}\n")
	step("defaults changed", false)
	step("nothing changed under defaults", true)
}

// walkDirFiles is listFiles as it was, on fs.WalkDir: the oracle of
// TestListFilesMatchesWalkDir.
func walkDirFiles(fsys fs.FS, cfg *Config) ([]string, ErrorList) {
	var files []string
	var list ErrorList
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			list = append(list, &Error{Pos: Pos{File: p}, Message: "cannot read: " + err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(name, ".") || name == "cue.mod") {
				return fs.SkipDir
			}
			if p != "." && ignored(cfg, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if p == ConfigFile || strings.HasPrefix(name, ".") || ignored(cfg, p) {
			return nil
		}
		switch strings.ToLower(path.Ext(name)) {
		case ".yaml", ".yml", ".json", ".cue":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		list = append(list, &Error{Pos: Pos{File: "."}, Message: "cannot read repository: " + err.Error()})
	}
	sort.Strings(files)
	return files, list
}

// brokenDirFS fails to list one directory.
type brokenDirFS struct {
	fstest.MapFS
	broken string
}

func (b brokenDirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == b.broken {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrPermission}
	}
	return b.MapFS.ReadDir(name)
}

// TestListFilesMatchesWalkDir: listFiles lists what fs.WalkDir did, and
// reports the same errors, with hidden directories, cue.mod, ignore
// patterns, odd names and a directory that cannot be read.
func TestListFilesMatchesWalkDir(t *testing.T) {
	m := fstest.MapFS{}
	for _, p := range []string{"a.yaml", "b.YML", "c.json", "d.cue", "e.txt", ".hidden.yaml", "tink.cue", "x/tink.cue",
		".git/config.yaml", "cue.mod/module.cue", "x/cue.mod/y.yaml", "a-b/x.yaml", "a/x.yaml", "a/b/c/d.yaml", "skip/me.yaml",
		"keep/skip.yaml", "drafts/a.yaml", "drafts/sub/b.yaml", "broken/a.yaml", "ok/b.yaml", "z/.y/w.yaml"} {
		m[p] = &fstest.MapFile{Data: []byte("a: b\n")}
	}
	cfg := &Config{Ignore: []string{"skip/", "drafts/**", "keep/skip.yaml", "*.json"}}
	for _, c := range []struct {
		fsys fs.FS
		cfg  *Config
	}{{m, nil}, {m, cfg}, {brokenDirFS{m, "broken"}, cfg}, {brokenDirFS{m, "."}, nil}, {fstest.MapFS{}, nil}, {os.DirFS("testdata"), nil}, {os.DirFS("nonexistent"), nil}} {
		want, wantErrs := walkDirFiles(c.fsys, c.cfg)
		got, gotErrs := listFiles(c.fsys, c.cfg)
		require.Equal(t, want, got)
		require.Equal(t, wantErrs, gotErrs)
	}
}
