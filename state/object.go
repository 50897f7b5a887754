package state

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kinds of object the server knows. The store accepts any kind name so that a
// new kind needs no change here; these exist so that callers spell them alike.
const (
	KindHardware = "Hardware"
	KindTemplate = "Template"
	KindWorkflow = "Workflow"
	// KindMachine is Rufio's BMC object (bmc.tinkerbell.org/v1alpha1).
	KindMachine = "Machine"
)

// Source says who owns an object: Git, or an API caller.
type Source string

// Sources. Git-managed objects are pruned and overwritten by the reconciler;
// API objects are never touched by Git.
const (
	SourceGit Source = "git"
	SourceAPI Source = "api"
)

// ObjectKey names an object. Names are unique per kind and namespace; the
// empty namespace is a namespace like any other (most repositories use it).
type ObjectKey struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String returns "Kind/name" or "Kind/namespace/name", the form used in every
// message about the object.
func (k ObjectKey) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// Validate reports an EINVALID error if the key cannot name an object. Names
// are restricted only as far as storage needs: no "/" (it separates the parts
// of String) and no control characters (stores use them as separators).
func (k ObjectKey) Validate() error {
	if err := checkToken("kind", k.Kind, 63, false); err != nil {
		return Errorf(EINVALID, "%s: %s", k, err)
	}
	if err := checkToken("namespace", k.Namespace, 253, true); err != nil {
		return Errorf(EINVALID, "%s: %s", k, err)
	}
	if err := checkToken("name", k.Name, 253, false); err != nil {
		return Errorf(EINVALID, "%s: %s", k, err)
	}
	return nil
}

// Object is one object as last applied: its declared content, where it came
// from and the bookkeeping the store adds.
type Object struct {
	Kind        string            `json:"kind"`
	Namespace   string            `json:"namespace,omitempty"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`

	// Spec is the object's spec in effect, as JSON. Package schema owns its
	// shape; the store keeps it verbatim.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Status is runtime state the server keeps about the object (for example
	// a netboot toggle it flipped, or the last BMC error), as JSON. It is not
	// declared in Git and survives Git updates unless the writer replaces it.
	Status json.RawMessage `json:"status,omitempty"`

	Source Source `json:"source"`
	// Revision is the Git revision the object was last applied from
	// (main@sha1:<hash>); empty for API objects.
	Revision string `json:"revision,omitempty"`
	// File is the repository path the object was declared in.
	File string `json:"file,omitempty"`

	// ResourceVersion is assigned by the store on every write from a
	// store-wide counter. On input it is the precondition: 0 means "create,
	// must not exist", anything else "must still be at this version".
	ResourceVersion uint64    `json:"resourceVersion"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`

	// Override is set when an API caller changed a Git-managed object. The
	// object then drifts from Git until Git changes it again.
	Override *Override `json:"override,omitempty"`
}

// Key returns the object's key.
func (o *Object) Key() ObjectKey {
	return ObjectKey{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

// Validate reports an EINVALID error naming the object if it cannot be stored.
func (o *Object) Validate() error {
	key := o.Key()
	if err := key.Validate(); err != nil {
		return err
	}
	switch o.Source {
	case SourceGit, SourceAPI:
	default:
		return Errorf(EINVALID, "%s: source must be %q or %q, not %q", key, SourceGit, SourceAPI, o.Source)
	}
	if len(o.Spec) > 0 && !json.Valid(o.Spec) {
		return Errorf(EINVALID, "%s: spec is not valid JSON", key)
	}
	if len(o.Status) > 0 && !json.Valid(o.Status) {
		return Errorf(EINVALID, "%s: status is not valid JSON", key)
	}
	for k := range o.Labels {
		if k == "" {
			return Errorf(EINVALID, "%s: label with empty key", key)
		}
	}
	if o.Override != nil {
		if o.Source != SourceGit {
			return Errorf(EINVALID, "%s: only Git-managed objects can carry an override", key)
		}
		if len(o.Override.GitSpec) > 0 && !json.Valid(o.Override.GitSpec) {
			return Errorf(EINVALID, "%s: override gitSpec is not valid JSON", key)
		}
	}
	return nil
}

// Override records an API change to a Git-managed object. Git stays the
// desired state: the reconciler drops the override as soon as Git changes the
// object again.
type Override struct {
	// By is who made the change (an API actor).
	By Actor     `json:"by"`
	At time.Time `json:"at"`
	// Reason is what the caller said, shown with the drift.
	Reason string `json:"reason,omitempty"`
	// GitSpec is the spec Git declares at the object's Revision, kept so that
	// status can show the drift as a difference against Object.Spec.
	GitSpec json.RawMessage `json:"gitSpec,omitempty"`
}

// ObjectQuery selects objects for Store.ListObjects.
type ObjectQuery struct {
	// Kind restricts the list to one kind; empty lists every kind.
	Kind string
	// Namespace restricts the list to one namespace; empty lists all
	// namespaces (the empty namespace cannot be singled out).
	Namespace string
	// Selector filters by labels; the zero Selector matches everything.
	Selector Selector
	// Limit caps the number of objects returned; 0 means no cap.
	Limit int
	// Continue is the token of the previous page; empty starts at the
	// beginning. Objects come in key order (kind, namespace, name).
	Continue string
}

// ObjectPage is one page of Store.ListObjects.
type ObjectPage struct {
	Objects []*Object
	// Continue fetches the next page; empty when there is none.
	Continue string
}

// checkToken validates one part of a key. It returns a plain error; callers
// wrap it with the object's name.
func checkToken(what, s string, max int, emptyOK bool) error {
	if s == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes", what, max)
	}
	if strings.ContainsRune(s, '/') {
		return fmt.Errorf("%s contains '/'", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character", what)
		}
	}
	return nil
}
