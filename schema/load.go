package schema

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Limits on what a repository may hold. Beyond them Load reports an error
// instead of spending unbounded memory on a mistaken commit.
const (
	// MaxFileSize is the largest repository file Load reads.
	MaxFileSize = 1 << 20
	// MaxObjects is the most objects one repository may declare: room for
	// a fleet of 100,000 machines with a workflow each.
	MaxObjects = 250_000
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
	// last is the state of the last valid Load of a HashFS, from which
	// the next one may check only what changed (see loadIncremental).
	lastMu sync.Mutex
	last   *loadState
	// incremental counts Loads that took the incremental way, for tests.
	incremental atomic.Int64
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

	hfs, hashed := fsys.(HashFS)
	if hashed && len(all) == 0 {
		if set := l.loadIncremental(ctx, hfs, cfg, files); set != nil {
			l.incremental.Add(1)
			return set, nil
		}
	}
	results := make([]fileResult, len(files))
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
			if hashed {
				l.forget()
			}
			return nil, all.sort()
		}
		for _, o := range r.objects {
			set.add(o)
		}
	}
	applyDefaults(set, cfg)
	no := l.defaultsID(cfg)
	if no != 0 {
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
		if hashed {
			l.forget()
		}
		return nil, all.sort()
	}
	if hashed {
		l.remember(hfs, files, hashes, results, set, no)
	}
	return set, nil
}

// add appends o to its kind's list.
func (s *Set) add(o Object) {
	switch o := o.(type) {
	case *Hardware:
		s.Hardware = append(s.Hardware, o)
	case *Template:
		s.Templates = append(s.Templates, o)
	case *Workflow:
		s.Workflows = append(s.Workflows, o)
	case *Machine:
		s.Machines = append(s.Machines, o)
	case *WorkflowSet:
		s.WorkflowSets = append(s.WorkflowSets, o)
	}
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
