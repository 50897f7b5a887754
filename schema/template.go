package schema

import "gopkg.in/yaml.v3"

// Template is a Tinkerbell workflow template. Spec.Data is Go template text
// that becomes a TemplateDocument only when rendered for a workflow (it may
// hold {{- if}} around list items and unquoted {{ }} values), so it is kept
// as text here. A bare template document in a file of its own (the format
// `tink template create --file` takes) loads as a Template too, named after
// its name field.
type Template struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata" tink:"required"`
	Spec     TemplateSpec `json:"spec" tink:"required"`
	// Bare is true when the template was a bare document rather than a
	// Template object.
	Bare bool `json:"-"`
	source
	// dataLine and dataCol map a line of Spec.Data to a line of the file:
	// template line n is file line dataLine+n-1, indented by dataCol-1.
	dataLine, dataCol int
	// dataNode is the YAML parse of the unrendered data, when it parses, so
	// errors in a rendered document can point at the template's own lines.
	dataNode *yaml.Node
	// parsed is the Go template, parsed once for every workflow using it.
	parsed *parsedTemplate
}

// GetKind returns KindTemplate.
func (*Template) GetKind() string { return KindTemplate }

// GetMeta returns the metadata.
func (t *Template) GetMeta() *ObjectMeta { return &t.Metadata }

// TemplateSpec is Tinkerbell's TemplateSpec.
type TemplateSpec struct {
	Data      *string            `json:"data" tink:"required"`
	SecretRef *TemplateSecretRef `json:"secretRef,omitempty"`
}

// TemplateSecretRef names a secret whose keys a template reads as .secret.KEY.
type TemplateSecretRef struct {
	Name string `json:"name" tink:"required"`
}

// TemplateDocument is a rendered template: Tinkerbell's workflow format.
// It is decoded strictly (an unknown key is an error) and checked with
// Tinkerbell's rules and ours (see checkDocument).
type TemplateDocument struct {
	Version       string `json:"version" tink:"required"`
	Name          string `json:"name" tink:"required"`
	ID            string `json:"id,omitempty"`
	GlobalTimeout int64  `json:"global_timeout,omitempty"`
	Tasks         []Task `json:"tasks" tink:"required"`
}

// Task is a group of actions run by one worker, in order.
type Task struct {
	Name        string            `json:"name" tink:"required"`
	Worker      string            `json:"worker" tink:"required"`
	Volumes     []string          `json:"volumes,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Actions     []Action          `json:"actions" tink:"required"`
}

// Action is one container (or command) run on the worker.
type Action struct {
	Name        string            `json:"name" tink:"required"`
	Image       string            `json:"image" tink:"required"`
	Timeout     int64             `json:"timeout" tink:"required"`
	Command     []string          `json:"command,omitempty"`
	OnTimeout   []string          `json:"on-timeout,omitempty"`
	OnFailure   []string          `json:"on-failure,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Pid         string            `json:"pid,omitempty"`
	Namespaces  *ActionNamespaces `json:"namespaces,omitempty"`
	// Retries is how many more attempts a FAILED or TIMEOUT action gets.
	Retries int `json:"retries,omitempty"`
	// Background marks the last reboot or kexec: the action counts as done
	// once the worker reports it started.
	Background bool `json:"background,omitempty"`
}

// ActionNamespaces are the Linux namespaces an action container joins.
type ActionNamespaces struct {
	Network string `json:"network,omitempty"`
	PID     string `json:"pid,omitempty"`
}
