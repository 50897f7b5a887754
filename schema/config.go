package schema

// Config is a repository's optional tink.cue: defaults applied to every
// object that does not set the field itself, and paths to skip.
type Config struct {
	Defaults *ConfigDefaults `json:"defaults,omitempty"`
	// Ignore lists path patterns (path.Match syntax; a trailing /** takes
	// a whole directory) that Load skips, e.g. docs/**.
	Ignore []string `json:"ignore,omitempty"`
	// Prune, when set, says whether objects removed from the repository
	// are deleted from the server; it overrides the server's --prune, so a
	// repository opts in (or out) in a reviewed commit.
	Prune *PruneConfig `json:"prune,omitempty"`
}

// PruneConfig is tink.cue's prune block.
type PruneConfig struct {
	// Enabled turns pruning on for this repository.
	Enabled bool `json:"enabled" tink:"required"`
	// MaxShare is the largest share (0 < share <= 1) of Git-managed
	// objects one commit may delete before the plan is refused; 0 keeps
	// the server's default (0.5). A mistaken `git rm -r hardware/` must not
	// wipe the inventory.
	MaxShare float64 `json:"maxShare,omitempty"`
}

// ConfigDefaults are values objects inherit.
type ConfigDefaults struct {
	// Namespace is given to objects without metadata.namespace.
	Namespace string `json:"namespace,omitempty"`
	// Labels are merged under each object's own labels.
	Labels map[string]string `json:"labels,omitempty"`
	// BMC fills port, protocol and insecureTLS of inline bmc blocks.
	BMC *BMCDefaults `json:"bmc,omitempty"`
	// Workflow gives bootOptions to workflows that have none.
	Workflow *WorkflowDefaults `json:"workflow,omitempty"`
}

// BMCDefaults fill unset fields of Hardware.spec.bmc.
type BMCDefaults struct {
	Port        int    `json:"port,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	InsecureTLS bool   `json:"insecureTLS,omitempty"`
}

// WorkflowDefaults fill unset fields of Workflow.spec.
type WorkflowDefaults struct {
	BootOptions *BootOptions `json:"bootOptions,omitempty"`
}
