package schema

// Workflow runs a template on a machine. Spec is Tinkerbell's WorkflowSpec
// plus run, the number an operator bumps to ask for a re-run.
type Workflow struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata" tink:"required"`
	Spec     WorkflowSpec `json:"spec" tink:"required"`
	// Rendered is the template rendered for this workflow by Load, for
	// review (tink diff) and checks; a run renders again when it starts and
	// keeps that rendering.
	Rendered *TemplateDocument `json:"-"`
	source
}

// GetKind returns KindWorkflow.
func (*Workflow) GetKind() string { return KindWorkflow }

// GetMeta returns the metadata.
func (w *Workflow) GetMeta() *ObjectMeta { return &w.Metadata }

// WorkflowSpec is Tinkerbell's WorkflowSpec with run added.
type WorkflowSpec struct {
	Disabled    *bool             `json:"disabled,omitempty"`
	TemplateRef string            `json:"templateRef" tink:"required"`
	HardwareRef string            `json:"hardwareRef" tink:"required"`
	HardwareMap map[string]string `json:"hardwareMap,omitempty"`
	BootOptions *BootOptions      `json:"bootOptions,omitempty"`
	// Run starts a new run when raised, once the previous run is terminal.
	Run int64 `json:"run,omitempty"`
}

// Boot modes a workflow may ask for before its first action.
const (
	BootModeNetboot    = "netboot"
	BootModeISO        = "iso"
	BootModeIsoboot    = "isoboot"
	BootModeCustomboot = "customboot"
)

// BootOptions are the BMC actions around a run.
type BootOptions struct {
	ToggleAllowNetboot bool              `json:"toggleAllowNetboot,omitempty"`
	ISOURL             string            `json:"isoURL,omitempty"`
	BootMode           string            `json:"bootMode,omitempty"`
	CustombootConfig   *CustombootConfig `json:"custombootConfig,omitempty"`
}

// CustombootConfig lists BMC actions for bootMode customboot.
type CustombootConfig struct {
	PreparingActions []BMCAction `json:"preparingActions,omitempty"`
	PostActions      []BMCAction `json:"postActions,omitempty"`
}

// BMCAction is one of Rufio's BMC actions; exactly one field is set.
type BMCAction struct {
	PowerAction             *string                  `json:"powerAction,omitempty"`
	OneTimeBootDeviceAction *OneTimeBootDeviceAction `json:"oneTimeBootDeviceAction,omitempty"`
	BootDevice              *BootDeviceConfig        `json:"bootDevice,omitempty"`
	VirtualMediaAction      *VirtualMediaAction      `json:"virtualMediaAction,omitempty"`
}

// OneTimeBootDeviceAction is Rufio's deprecated boot device action.
type OneTimeBootDeviceAction struct {
	Devices []string `json:"device" tink:"required"`
	EFIBoot bool     `json:"efiBoot,omitempty"`
}

// BootDeviceConfig sets the next boot device.
type BootDeviceConfig struct {
	Device     string `json:"device,omitempty"`
	Persistent bool   `json:"persistent,omitempty"`
	EFIBoot    bool   `json:"efiBoot,omitempty"`
}

// VirtualMediaAction inserts or ejects virtual media.
type VirtualMediaAction struct {
	MediaURL string `json:"mediaURL,omitempty"`
	Kind     string `json:"kind" tink:"required"`
}
