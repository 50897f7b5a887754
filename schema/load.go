package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits on what a repository may hold. Beyond them Load reports an error
// instead of spending unbounded memory on a mistaken commit.
const (
	// MaxFileSize is the largest repository file Load reads.
	MaxFileSize = 1 << 20
	// MaxObjects is the most objects one repository may declare.
	MaxObjects = 100_000
	// ConfigFile is the optional repository configuration at the root.
	ConfigFile = "tink.cue"
)

// Loader reads and validates repositories. It compiles the CUE definitions
// and the template functions once and reuses them for every Load; it is safe
// for concurrent use.
type Loader struct {
	// Workers bounds the goroutines of one Load; 0 means GOMAXPROCS.
	Workers int
	// MaxObjects overrides the object limit; 0 means MaxObjects.
	MaxObjects int

	once    sync.Once
	defsErr error
	// CUE contexts are not safe for concurrent evaluation (LookupPath and
	// Unify finalise shared vertices lazily; the race detector sees it), so
	// each goroutine borrows definitions of its own, compiled in <1 ms.
	defsMu   sync.Mutex
	defsFree []*definitions
	msgs     *messages
	leaf     *leafResults
	types    typeInfos
	renderer *Renderer
	tmplErrs *templateErrorParser
	images   *imageGrammar
	cache    fileCache
	renders  renderCache
	expanded expansionCache
	parses   atomic.Int64 // files read and decoded, for tests and stats
	// ids numbers decodings (source.id) and sets of defaults
	// (source.defaults), so that neither number is ever reused.
	ids        atomic.Uint64
	defaultsMu sync.Mutex
	defaultsFP string // the defaults of the last Load, as JSON
	defaultsNo uint64 // their number
	// Selector compiles a label selector (the API's syntax) into a
	// matcher; WorkflowSets expand only with it. Package state owns the
	// selector language and schema imports none of ours, so the caller
	// (the reconciler, tink validate) supplies it.
	Selector func(selector string) (func(labels map[string]string) bool, error)
	// fullCUE checks each object as one CUE value instead of value by
	// value; tests use it to show both ways find the same errors.
	fullCUE bool
}

// NewLoader returns a Loader. It does no work until the first Load.
func NewLoader() *Loader {
	return &Loader{}
}

// Load validates the repository in fsys with a fresh Loader. On any error it
// returns an ErrorList holding every mistake found, each with file, line,
// column and field path, and a nil Set.
func Load(fsys fs.FS) (*Set, error) {
	return NewLoader().Load(context.Background(), fsys)
}

func (l *Loader) init() error {
	l.once.Do(func() {
		l.msgs = newMessages()
		l.leaf = &leafResults{}
		var d *definitions
		d, l.defsErr = l.compile()
		if d != nil {
			l.release(d)
		}
		l.renderer = NewRenderer()
		l.tmplErrs = newTemplateErrorParser()
		l.images = newImageGrammar()
	})
	return l.defsErr
}

func (l *Loader) compile() (*definitions, error) {
	return compileDefinitions(l.msgs, l.leaf)
}

// borrow takes definitions no other goroutine is using.
func (l *Loader) borrow() *definitions {
	l.defsMu.Lock()
	if n := len(l.defsFree); n > 0 {
		d := l.defsFree[n-1]
		l.defsFree = l.defsFree[:n-1]
		l.defsMu.Unlock()
		return d
	}
	l.defsMu.Unlock()
	d, err := l.compile()
	if err != nil {
		// The same source compiled once already in init.
		panic("schema: definitions stopped compiling: " + err.Error())
	}
	return d
}

// release returns borrowed definitions.
func (l *Loader) release(d *definitions) {
	l.defsMu.Lock()
	l.defsFree = append(l.defsFree, d)
	l.defsMu.Unlock()
}

// fileResult is what one file yields.
type fileResult struct {
	objects []Object
	errs    ErrorList
	ignored int
}

// Load reads every .yaml, .yml, .json and .cue file of fsys, validates each
// object, then the set as a whole. It returns the Set, or an ErrorList with
// every mistake (never only the first). Other errors (a cancelled context)
// are returned as they are.
func (l *Loader) Load(ctx context.Context, fsys fs.FS) (*Set, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	var all ErrorList
	cfg, cfgErrs := l.loadConfig(fsys)
	all = append(all, cfgErrs...)

	files, walkErrs := listFiles(fsys, cfg)
	all = append(all, walkErrs...)

	results := make([]fileResult, len(files))
	hfs, hashed := fsys.(HashFS)
	var hashes []string
	var misses []int
	if hashed {
		// Most files of a commit are unchanged: take them from the cache
		// in one pass, and parse only the rest.
		hashes, misses = l.cache.getAll(hfs, files, results)
	} else {
		misses = make([]int, len(files))
		for i := range misses {
			misses[i] = i
		}
	}
	// Reading files waits on the kernel as much as it computes: twice as
	// many goroutines as cores keep both busy.
	if err := l.parallelN(ctx, 2*l.workers(), len(misses), func(j int) {
		i := misses[j]
		results[i] = l.loadFile(fsys, files[i])
		if hashed && hashes[i] != "" {
			l.cache.put(files[i], hashes[i], results[i])
		}
	}); err != nil {
		return nil, err
	}
	if hashed {
		l.cache.keep(files, hashes)
	}

	set := &Set{Config: cfg}
	count := 0
	for _, r := range results {
		all = append(all, r.errs...)
		set.Ignored += r.ignored
		count += len(r.objects)
		if count > l.Limit() {
			all = append(all, &Error{Pos: Pos{File: "."}, Message: fmt.Sprintf("the repository declares more than %d objects; split it or raise the limit", l.Limit())})
			return nil, all.sort()
		}
		for _, o := range r.objects {
			switch o := o.(type) {
			case *Hardware:
				set.Hardware = append(set.Hardware, o)
			case *Template:
				set.Templates = append(set.Templates, o)
			case *Workflow:
				set.Workflows = append(set.Workflows, o)
			case *Machine:
				set.Machines = append(set.Machines, o)
			case *WorkflowSet:
				set.WorkflowSets = append(set.WorkflowSets, o)
			}
		}
	}
	applyDefaults(set, cfg)
	if no := l.defaultsID(cfg); no != 0 {
		markDefaults(set, no)
	}
	set.sortSet()
	// Objects of a file system without hashes are decoded afresh on every
	// Load, so their renderings could never be used again: keeping them
	// would only push out those of the repository being followed.
	all = append(all, l.expandSets(set, hashed)...)
	all = append(all, l.checkSet(ctx, set, hashed)...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(all) > 0 {
		return nil, all.sort()
	}
	return set, nil
}

// defaultsID numbers the repository defaults of cfg: objects that got
// the same defaults carry the same number (0: no defaults), so their
// Identity changes when tink.cue's defaults do, though their files did not.
// A change of defaults takes a new number, even back to earlier ones.
func (l *Loader) defaultsID(cfg *Config) uint64 {
	if cfg == nil || cfg.Defaults == nil {
		return 0
	}
	b, err := json.Marshal(cfg.Defaults)
	if err != nil {
		return l.ids.Add(1) // cannot happen (plain data); never match then
	}
	l.defaultsMu.Lock()
	defer l.defaultsMu.Unlock()
	if l.defaultsNo == 0 || string(b) != l.defaultsFP {
		l.defaultsFP, l.defaultsNo = string(b), l.ids.Add(1)
	}
	return l.defaultsNo
}

func markDefaults(s *Set, no uint64) {
	for _, o := range s.Hardware {
		o.defaults = no
	}
	for _, o := range s.Templates {
		o.defaults = no
	}
	for _, o := range s.Workflows {
		o.defaults = no
	}
	for _, o := range s.Machines {
		o.defaults = no
	}
	for _, o := range s.WorkflowSets {
		o.defaults = no
	}
}

// Limit is the most objects a repository may declare.
func (l *Loader) Limit() int {
	if l.MaxObjects > 0 {
		return l.MaxObjects
	}
	return MaxObjects
}

func (l *Loader) workers() int {
	if l.Workers > 0 {
		return l.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// parallel runs fn(0..n-1) on the Loader's workers and waits for them all.
func (l *Loader) parallel(ctx context.Context, n int, fn func(i int)) error {
	return l.parallelN(ctx, l.workers(), n, fn)
}

// parallelN runs fn(0..n-1) on the given number of goroutines.
func (l *Loader) parallelN(ctx context.Context, workers, n int, fn func(i int)) error {
	workers = min(workers, n)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// listFiles returns the object files of fsys in a stable order. Hidden
// directories (.git, .github), cue.mod and the config's ignore patterns are
// skipped.
func listFiles(fsys fs.FS, cfg *Config) ([]string, ErrorList) {
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

// loadFile reads and validates every object of one file.
func (l *Loader) loadFile(fsys fs.FS, name string) (res fileResult) {
	defer func() {
		// A defect in a dependency must cost one file an error, never the
		// server; the fuzz test hunts for these.
		if r := recover(); r != nil {
			res = fileResult{errs: ErrorList{{Pos: Pos{File: name}, Message: fmt.Sprintf("internal error while reading this file: %v", r)}}}
		}
	}()
	l.parses.Add(1)
	b, ferr := readFile(fsys, name)
	if ferr != nil {
		return fileResult{errs: ErrorList{ferr}}
	}
	defs := l.borrow()
	defer l.release(defs)
	return l.loadBytes(defs, name, b)
}

// loadBytes validates the objects in one file's content.
func (l *Loader) loadBytes(defs *definitions, name string, b []byte) fileResult {
	if strings.EqualFold(path.Ext(name), ".cue") {
		return l.loadCUEFile(defs, name, b)
	}
	if looksLikeBareTemplate(b) {
		t, errs := l.loadBareTemplate(name, b)
		if t == nil {
			return fileResult{errs: errs}
		}
		return fileResult{objects: []Object{t}, errs: errs}
	}
	var res fileResult
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.errs = append(res.errs, &Error{Pos: Pos{File: name, Line: yamlErrorLine(err), Column: 1}, Message: "invalid YAML: " + cleanYAMLError(err)})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		l.loadDocument(defs, name, b, doc.Content[0], &res, true)
	}
	return res
}

// loadDocument validates one YAML document; a kubectl List is unpacked.
func (l *Loader) loadDocument(defs *definitions, file string, src []byte, n *yaml.Node, res *fileResult, allowList bool) {
	pos := Pos{File: file, Line: n.Line, Column: n.Column}
	n = deref(n)
	if isNull(n) {
		return // an empty document between --- markers
	}
	if n.Kind != yaml.MappingNode {
		res.errs = append(res.errs, &Error{Pos: pos, Message: "a document must be a mapping with apiVersion, kind, metadata and spec, got " + describeDocument(n)})
		return
	}
	apiVersion, kind := scalarField(n, "apiVersion"), scalarField(n, "kind")
	if allowList && kind != nil && kind.Value == "List" {
		_, items := findKey(n, "items", 0)
		if items == nil || deref(items).Kind != yaml.SequenceNode {
			res.errs = append(res.errs, &Error{Pos: pos, Path: "items", Message: "a List needs an items list"})
			return
		}
		for _, it := range deref(items).Content {
			l.loadDocument(defs, file, src, it, res, false)
		}
		return
	}
	res.ignored += stripServerFields(n)
	obj, errs := l.decodeObject(defs, file, src, n, apiVersion, kind, nil)
	res.errs = append(res.errs, errs...)
	if obj != nil {
		res.objects = append(res.objects, obj)
	}
}

// describeDocument names what a document that is not a mapping holds
// without quoting it: a whole file that is one string is what a link to a
// secret, a key or /etc/passwd looks like.
func describeDocument(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("a single value of %d characters", utf8.RuneCountInString(n.Value))
	}
	return describe(n)
}

// metaNode is an object's metadata mapping, or an empty one.
func metaNode(n *yaml.Node) *yaml.Node {
	if _, m := findKey(n, "metadata", 0); m != nil && deref(m).Kind == yaml.MappingNode {
		return deref(m)
	}
	return &yaml.Node{Kind: yaml.MappingNode}
}

func scalarField(m *yaml.Node, key string) *yaml.Node {
	_, v := findKey(m, key, 0)
	if v == nil {
		return nil
	}
	v = deref(v)
	if v.Kind != yaml.ScalarNode {
		return nil
	}
	return v
}

// kindInfo says how to decode one kind.
type kindInfo struct {
	apiVersion string
	newObject  func() Object
}

func kinds() map[string]kindInfo {
	return map[string]kindInfo{
		KindHardware: {APIVersion, func() Object { return &Hardware{} }},
		KindTemplate: {APIVersion, func() Object { return &Template{} }},
		KindWorkflow: {APIVersion, func() Object { return &Workflow{} }},
		KindMachine:  {BMCAPIVersion, func() Object { return &Machine{} }},
		// tinkops' own kind, in its own group.
		KindWorkflowSet: {SetAPIVersion, func() Object { return &WorkflowSet{} }},
	}
}

// decodeObject decodes and validates one object document.
// cueCheck, when set, replaces the CUE check of the YAML document (objects
// from .cue files are checked as CUE values, with their own positions).
func (l *Loader) decodeObject(defs *definitions, file string, src []byte, n *yaml.Node, apiVersion, kind *yaml.Node, cueCheck func() ErrorList) (Object, ErrorList) {
	pos := Pos{File: file, Line: n.Line, Column: n.Column}
	var e errs
	if kind == nil {
		e.add(pos, "kind", "missing kind (want Hardware, Template, Workflow, Machine or WorkflowSet)")
		return nil, e.list
	}
	ks := kinds()
	ki, ok := ks[kind.Value]
	if !ok {
		e.add(Pos{File: file, Line: kind.Line, Column: kind.Column}, "kind", "unknown kind %q%s (want Hardware, Template, Workflow, Machine or WorkflowSet)", kind.Value, suggest(kind.Value, []string{KindHardware, KindTemplate, KindWorkflow, KindMachine, KindWorkflowSet}))
		return nil, e.list
	}
	if apiVersion == nil {
		e.add(pos, "apiVersion", "missing apiVersion (want %s)", ki.apiVersion)
		return nil, e.list
	}
	if apiVersion.Value != ki.apiVersion {
		e.add(Pos{File: file, Line: apiVersion.Line, Column: apiVersion.Column}, "apiVersion", "apiVersion %q is not served for kind %s (want %s)", apiVersion.Value, kind.Value, ki.apiVersion)
		return nil, e.list
	}
	if le := checkLimits(file, kind.Value, n); le != nil {
		le.Object = kind.Value
		if name := scalarField(metaNode(n), "name"); name != nil {
			le.Object += "/" + name.Value
		}
		return nil, ErrorList{le}
	}
	obj := ki.newObject()
	d := &decoder{types: &l.types, file: file, errs: &e}
	d.decode(n, reflectValueOf(obj), false)
	setSource(obj, pos, n)
	sourceOf(obj).id = l.ids.Add(1)
	if o, ok := obj.(*Template); ok {
		o.dataLine, o.dataCol = dataStart(src, n)
	}
	primary := append(e.list, l.checkObject(obj, file, n)...)
	var cueErrs ErrorList
	if cueCheck != nil {
		cueErrs = cueCheck()
	} else {
		def := defs.byKind[kind.Value]
		if l.fullCUE {
			cueErrs = defs.check(def, n, file)
		} else {
			cueErrs = defs.leaf.check(kind.Value, def, n, file)
		}
	}
	list := mergeErrors(primary, cueErrs)
	if len(list) > 0 {
		markInvalid(obj)
	}
	for _, x := range list {
		x.Object = kind.Value + "/" + objectName(obj)
	}
	return obj, list
}

func markInvalid(o Object) {
	switch x := o.(type) {
	case *Hardware:
		x.invalid = true
	case *Template:
		x.invalid = true
	case *Workflow:
		x.invalid = true
	case *Machine:
		x.invalid = true
	case *WorkflowSet:
		x.invalid = true
	}
}

func objectName(o Object) string {
	m := o.GetMeta()
	if m.Namespace != "" {
		return m.Namespace + "/" + m.Name
	}
	return m.Name
}

// mergeErrors keeps every primary error (the decoder's and Go checks') and
// the CUE errors that say something new: CUE repeats unknown fields, wrong
// types and missing fields the decoder has already placed precisely.
func mergeErrors(primary, secondary ErrorList) ErrorList {
	out := append(ErrorList(nil), primary...)
	for _, s := range secondary {
		if !coveredBy(s, primary) {
			out = append(out, s)
		}
	}
	return out
}

// coveredBy reports whether a primary error already speaks for s: same
// field, or a field above it.
func coveredBy(s *Error, primary ErrorList) bool {
	for _, p := range primary {
		switch {
		case p.Path == "":
			if s.Path == "" {
				return true
			}
		case s.Path == p.Path, strings.HasPrefix(s.Path, p.Path+"."), strings.HasPrefix(s.Path, p.Path+"["):
			return true
		}
	}
	return false
}

// serverFields are the metadata fields a Kubernetes API server sets; a
// kubectl dump carries them and Load drops them.
func serverFields() []string {
	return []string{"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "managedFields", "ownerReferences", "finalizers", "selfLink", "generateName"}
}

// stripServerFields removes status, server-set metadata and the
// last-applied-configuration annotation from an object document, returning
// how many fields it removed.
func stripServerFields(n *yaml.Node) int {
	count := removeKeys(n, "status")
	_, meta := findKey(n, "metadata", 0)
	if meta == nil || deref(meta).Kind != yaml.MappingNode {
		return count
	}
	meta = deref(meta)
	count += removeKeys(meta, serverFields()...)
	if _, ann := findKey(meta, "annotations", 0); ann != nil && deref(ann).Kind == yaml.MappingNode {
		count += removeKeys(deref(ann), "kubectl.kubernetes.io/last-applied-configuration")
		if len(deref(ann).Content) == 0 {
			removeKeys(meta, "annotations")
		}
	}
	return count
}

func removeKeys(m *yaml.Node, keys ...string) int {
	removed := 0
	out := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		drop := false
		for _, key := range keys {
			if k.Value == key && k.Kind == yaml.ScalarNode {
				drop = true
			}
		}
		if drop {
			removed++
			continue
		}
		out = append(out, m.Content[i], m.Content[i+1])
	}
	m.Content = out
	return removed
}

// setSource records where obj is declared and where the fields that set-wide
// checks report on are.
func setSource(obj Object, pos Pos, n *yaml.Node) {
	spots := map[string]Pos{}
	mark := func(p ...string) {
		if node, resolved, ok := locate(n, p, false); ok {
			spots[formatPath(resolved)] = Pos{File: pos.File, Line: node.Line, Column: node.Column}
		}
	}
	mark("metadata", "name")
	switch o := obj.(type) {
	case *Hardware:
		for i := range o.Spec.Interfaces {
			mark("spec", "interfaces", fmt.Sprint(i), "dhcp", "mac")
			mark("spec", "interfaces", fmt.Sprint(i), "dhcp", "ip", "address")
		}
		mark("spec", "bmcRef", "name")
		mark("spec", "bmcRef")
		mark("spec", "bmc", "credentialsRef")
		o.source = source{pos: pos, spots: spots}
	case *Workflow:
		mark("spec", "templateRef")
		mark("spec", "hardwareRef")
		for k := range o.Spec.HardwareMap {
			mark("spec", "hardwareMap", k)
		}
		o.source = source{pos: pos, spots: spots}
	case *Template:
		mark("spec", "data")
		o.source = source{pos: pos, spots: spots}
	case *Machine:
		mark("spec", "connection", "authSecretRef")
		o.source = source{pos: pos, spots: spots}
	case *WorkflowSet:
		mark("spec", "templateRef")
		mark("spec", "hardwareSelector")
		for k := range o.Spec.HardwareMap {
			mark("spec", "hardwareMap", k)
		}
		// The workflows a set owns report their hardware at its selector.
		if p, ok := spots["spec.hardwareSelector"]; ok {
			spots["spec.hardwareRef"] = p
		}
		o.source = source{pos: pos, spots: spots}
	}
}

// dataStart finds where a Template's spec.data text begins in the file, so
// template line n maps to a file line.
func dataStart(src []byte, n *yaml.Node) (line, col int) {
	node, _, ok := locate(n, []string{"spec", "data"}, false)
	if !ok {
		return n.Line, n.Column
	}
	if node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return node.Line, node.Column + 1
		}
		return node.Line, node.Column
	}
	// A block scalar's text starts on the next line at its indentation.
	line = node.Line + 1
	lines := bytes.Split(src, []byte("\n"))
	for line-1 < len(lines) && len(bytes.TrimSpace(lines[line-1])) == 0 {
		line++
	}
	col = 1
	if line-1 < len(lines) {
		col = len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " ")) + 1
	}
	return line, col
}

// looksLikeBareTemplate reports whether a file is a bare Tinkerbell template
// document (version, name, tasks at the top) rather than objects. It is
// decided on the text, because a template's {{ }} need not be valid YAML.
func looksLikeBareTemplate(b []byte) bool {
	hasTasks, hasKind := false, false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("tasks:")):
			hasTasks = true
		case bytes.HasPrefix(line, []byte("kind:")), bytes.HasPrefix(line, []byte("apiVersion:")):
			hasKind = true
		}
	}
	return hasTasks && !hasKind
}

// loadBareTemplate reads a bare template document: the whole file is the
// template text, named by its name field.
func (l *Loader) loadBareTemplate(file string, b []byte) (*Template, ErrorList) {
	var e errs
	text := string(b)
	t := &Template{
		TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindTemplate},
		Spec:     TemplateSpec{Data: &text},
		Bare:     true,
		dataLine: 1,
		dataCol:  1,
	}
	pos := Pos{File: file, Line: 1, Column: 1}
	spots := map[string]Pos{"spec.data": pos}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err == nil && len(root.Content) > 0 && deref(root.Content[0]).Kind == yaml.MappingNode {
		t.dataNode = deref(root.Content[0])
		if nameNode := scalarField(t.dataNode, "name"); nameNode != nil {
			t.Metadata.Name = nameNode.Value
			spots["metadata.name"] = Pos{File: file, Line: nameNode.Line, Column: nameNode.Column}
		}
	} else {
		// Not YAML until rendered: read the name line as text.
		for i, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "name:"); ok {
				v = strings.TrimSpace(v)
				col := strings.Index(line, v) + 1
				t.Metadata.Name = strings.Trim(v, `"'`)
				spots["metadata.name"] = Pos{File: file, Line: i + 1, Column: col}
				break
			}
		}
	}
	t.source = source{pos: pos, spots: spots, id: l.ids.Add(1)}
	if t.Metadata.Name == "" {
		e.add(pos, "name", "a template document needs a name")
		return nil, e.list
	}
	if !validName(t.Metadata.Name) {
		e.add(t.at("metadata.name"), "name", "%q is not a valid template name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)", t.Metadata.Name)
	}
	e.list = append(e.list, l.checkTemplateText(t)...)
	for _, x := range e.list {
		x.Object = KindTemplate + "/" + t.Metadata.Name
	}
	return t, e.list
}

// parsedTemplate caches a template's parse for all the workflows that use it.
type parsedTemplate struct {
	tmpl *Program
	err  error
	// readsObject is false when the text cannot refer to .hardware (the
	// whole object as maps), which then need not be built per render.
	readsObject bool
}

// DecodeFile reads the objects of one file (YAML documents, a kubectl List,
// a bare template, or CUE) and checks each on its own, without the set-wide
// checks. tink import uses it to split a cluster dump. It returns the
// objects, the number of server-set fields dropped, and the errors. Unlike
// repository files, data may exceed MaxFileSize (a dump of a large fleet
// does); the caller bounds what it reads.
func (l *Loader) DecodeFile(name string, data []byte) ([]Object, int, ErrorList) {
	if err := l.init(); err != nil {
		return nil, 0, ErrorList{{Pos: Pos{File: name}, Message: err.Error()}}
	}
	if !utf8.Valid(data) {
		line, col := invalidUTF8At(data)
		return nil, 0, ErrorList{{Pos: Pos{File: name, Line: line, Column: col}, Message: "file is not valid UTF-8 text"}}
	}
	defs := l.borrow()
	defer l.release(defs)
	res := l.loadBytes(defs, name, data)
	return res.objects, res.ignored, res.errs.sort()
}
