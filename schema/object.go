package schema

import "sort"

// API groups and kinds tinkops reads. They are Tinkerbell's, so existing
// manifests drop into a repository unchanged.
const (
	// APIVersion is the group/version of Hardware, Template and Workflow.
	APIVersion = "tinkerbell.org/v1alpha1"
	// BMCAPIVersion is the group/version of Rufio's Machine.
	BMCAPIVersion = "bmc.tinkerbell.org/v1alpha1"
	// SetAPIVersion is the group/version of tinkops' own kinds
	// (WorkflowSet), kept apart so Tinkerbell's kinds stay Tinkerbell's.
	SetAPIVersion = "tinkops.dev/v1alpha1"

	KindHardware = "Hardware" // a machine: interfaces, disks, metadata, BMC
	KindTemplate = "Template" // a Tinkerbell workflow template
	KindWorkflow = "Workflow" // a template run on hardware
	KindMachine  = "Machine"  // a Rufio BMC connection, referenced by Hardware.spec.bmcRef
	// KindWorkflowSet is a template over every machine a selector picks.
	KindWorkflowSet = "WorkflowSet"
)

// TypeMeta is the apiVersion/kind pair every object starts with.
type TypeMeta struct {
	APIVersion string `json:"apiVersion" tink:"required"`
	Kind       string `json:"kind" tink:"required"`
}

// ObjectMeta is the part of Kubernetes metadata an operator writes. Fields a
// Kubernetes API server sets (uid, resourceVersion, managedFields, ...) are
// removed by Load before decoding and counted in Set.Ignored.
type ObjectMeta struct {
	Name        string            `json:"name" tink:"required"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Key identifies an object within its kind: names are unique per kind and
// namespace.
type Key struct {
	Namespace string
	Name      string
}

// String prints namespace/name, or the name alone in the default namespace.
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}

// Object is what every declared kind has in common.
type Object interface {
	// GetKind returns Hardware, Template, Workflow, Machine or WorkflowSet.
	GetKind() string
	// GetMeta returns the object's metadata.
	GetMeta() *ObjectMeta
	// Origin returns where the object is declared.
	Origin() Pos
}

// source records where an object came from and the positions of the fields
// that set-wide checks (uniqueness, references) report on. It is unexported
// so it never reaches JSON or the decoder.
type source struct {
	pos   Pos
	spots spots
	// invalid is set when the object has errors of its own; checks that
	// depend on it are skipped, so one mistake is reported once and not
	// again by everything that refers to the object.
	invalid bool
	// id names this decoding of the object: the Loader gives every object
	// it decodes a new one, and copies from its file cache keep it (see
	// Identity). Zero for objects that no Loader decoded.
	id uint64
	// defaults names the repository defaults applied to the object by the
	// Load that returned it (see Loader.defaultsID); 0 for none.
	defaults uint64
}

// Identity names the content of an object as a Loader returned it, so that
// callers can cache what they derive from it. Two objects returned by the
// same Loader with the same non-zero Identity are equal in everything Load
// sets (fields, metadata with the repository's defaults, file and
// positions), as long as nobody modified them since; an unchanged file
// gives its objects the same Identity on every Load. Objects built in code
// or decoded from the store have the zero Identity, which is never reused.
// Identities of different Loaders are unrelated.
type Identity struct {
	decoded, defaults uint64
}

// IsZero reports whether id is the zero Identity (unknown content).
func (id Identity) IsZero() bool { return id.decoded == 0 }

// IdentityOf returns the Identity of o.
func IdentityOf(o Object) Identity {
	if s := sourceOf(o); s != nil {
		return Identity{decoded: s.id, defaults: s.defaults}
	}
	return Identity{}
}

// sourceOf returns the bookkeeping of o.
func sourceOf(o Object) *source {
	switch x := o.(type) {
	case *Hardware:
		return &x.source
	case *Template:
		return &x.source
	case *Workflow:
		return &x.source
	case *Machine:
		return &x.source
	case *WorkflowSet:
		return &x.source
	}
	return nil
}

// Origin returns the file and line where the object's document starts.
func (s *source) Origin() Pos { return s.pos }

// at returns the position of a field path, or the object's own position
// when the field was not recorded.
func (s *source) at(path string) Pos {
	if p, ok := s.spots.get(path); ok {
		return p
	}
	return s.pos
}

// spots are the recorded positions of a few fields by path. A list, not a
// map: an object records two to six, and a map of them was a fifth of the
// memory a loaded fleet holds.
type spots []spot

type spot struct {
	path string
	pos  Pos
}

// get returns the position recorded for path.
func (s spots) get(path string) (Pos, bool) {
	for _, x := range s {
		if x.path == path {
			return x.pos, true
		}
	}
	return Pos{}, false
}

// set records the position of path, replacing an earlier one.
func (s *spots) set(path string, p Pos) {
	for i := range *s {
		if (*s)[i].path == path {
			(*s)[i].pos = p
			return
		}
	}
	*s = append(*s, spot{path, p})
}

// Set is a validated desired state: every object in a repository.
type Set struct {
	Hardware  []*Hardware
	Templates []*Template
	Workflows []*Workflow
	Machines  []*Machine
	// WorkflowSets are tinkops' sets; the Workflows they own are in
	// Workflows, labelled with OwnerLabel.
	WorkflowSets []*WorkflowSet
	// Config is the repository's tink.cue, when it has one.
	Config *Config
	// Ignored counts server-set fields (status, uid, managedFields, ...)
	// dropped from kubectl dumps.
	Ignored int
}

// Counts returns the number of objects by kind.
func (s *Set) Counts() map[string]int {
	c := map[string]int{
		KindHardware: len(s.Hardware),
		KindTemplate: len(s.Templates),
		KindWorkflow: len(s.Workflows),
		KindMachine:  len(s.Machines),
	}
	if n := len(s.WorkflowSets); n > 0 {
		c[KindWorkflowSet] = n // only repositories that use tinkops' own kind
	}
	return c
}

// Len is the number of objects in the set.
func (s *Set) Len() int {
	return len(s.Hardware) + len(s.Templates) + len(s.Workflows) + len(s.Machines) + len(s.WorkflowSets)
}

// sortSet orders every kind by namespace and name so that a Set is the same
// whatever order files were read in.
func (s *Set) sortSet() {
	sortObjects(s.Hardware)
	sortObjects(s.Templates)
	sortObjects(s.Workflows)
	sortObjects(s.Machines)
	sortObjects(s.WorkflowSets)
}

func sortObjects[T Object](l []T) {
	sort.Slice(l, func(i, j int) bool {
		a, b := l[i].GetMeta(), l[j].GetMeta()
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}
