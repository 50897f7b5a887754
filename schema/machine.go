package schema

// Machine is Rufio's bmc.tinkerbell.org/v1alpha1 Machine: a BMC connection
// that a Hardware names in spec.bmcRef.
type Machine struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata" tink:"required"`
	Spec     MachineSpec `json:"spec" tink:"required"`
	source
}

// GetKind returns KindMachine.
func (*Machine) GetKind() string { return KindMachine }

// GetMeta returns the metadata.
func (m *Machine) GetMeta() *ObjectMeta { return &m.Metadata }

// DefaultBMCPort is the IPMI port Rufio assumes when a Machine gives none.
const DefaultBMCPort = 623

// MachineSpec is Rufio's MachineSpec.
type MachineSpec struct {
	Connection Connection `json:"connection" tink:"required"`
}

// Connection is how to reach the BMC.
type Connection struct {
	Host            string           `json:"host" tink:"required"`
	Port            int              `json:"port,omitempty"`
	AuthSecretRef   *SecretReference `json:"authSecretRef,omitempty"`
	InsecureTLS     bool             `json:"insecureTLS,omitempty"`
	ProviderOptions *ProviderOptions `json:"providerOptions,omitempty"`
}

// SecretReference names a secret: <namespace>/<name>/ or <name>/ in the
// server's secrets directory.
type SecretReference struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// ProviderOptions are bmclib provider settings.
type ProviderOptions struct {
	PreferredOrder []string         `json:"preferredOrder,omitempty"`
	IntelAMT       *IntelAMTOptions `json:"intelAMT,omitempty"`
	IPMITOOL       *IPMITOOLOptions `json:"ipmitool,omitempty"`
	Redfish        *RedfishOptions  `json:"redfish,omitempty"`
	RPC            *RPCOptions      `json:"rpc,omitempty"`
}

// IntelAMTOptions configures the Intel AMT provider.
type IntelAMTOptions struct {
	Port       int    `json:"port,omitempty"`
	HostScheme string `json:"hostScheme,omitempty"`
}

// IPMITOOLOptions configures the ipmitool provider.
type IPMITOOLOptions struct {
	Port        int    `json:"port,omitempty"`
	CipherSuite string `json:"cipherSuite,omitempty"`
}

// RedfishOptions configures the Redfish (gofish) provider.
type RedfishOptions struct {
	Port         int    `json:"port,omitempty"`
	UseBasicAuth bool   `json:"useBasicAuth,omitempty"`
	SystemName   string `json:"systemName,omitempty"`
}

// RPCOptions configures bmclib's RPC provider.
type RPCOptions struct {
	ConsumerURL              string            `json:"consumerURL" tink:"required"`
	LogNotificationsDisabled bool              `json:"logNotificationsDisabled,omitempty"`
	Request                  *RequestOpts      `json:"request,omitempty"`
	Signature                *SignatureOpts    `json:"signature,omitempty"`
	HMAC                     *HMACOpts         `json:"hmac,omitempty"`
	Experimental             *ExperimentalOpts `json:"experimental,omitempty"`
}

// RequestOpts shape the RPC provider's HTTP request.
type RequestOpts struct {
	HTTPContentType string              `json:"httpContentType,omitempty"`
	HTTPMethod      string              `json:"httpMethod,omitempty"`
	StaticHeaders   map[string][]string `json:"staticHeaders,omitempty"`
	TimestampFormat string              `json:"timestampFormat,omitempty"`
	TimestampHeader string              `json:"timestampHeader,omitempty"`
}

// SignatureOpts shape the RPC request signature.
type SignatureOpts struct {
	HeaderName                 string   `json:"headerName,omitempty"`
	AppendAlgoToHeaderDisabled bool     `json:"appendAlgoToHeaderDisabled,omitempty"`
	IncludedPayloadHeaders     []string `json:"includedPayloadHeaders,omitempty"`
}

// HMACOpts name the secrets that sign RPC requests.
type HMACOpts struct {
	PrefixSigDisabled bool                         `json:"prefixSigDisabled,omitempty"`
	Secrets           map[string][]SecretReference `json:"secrets,omitempty"`
}

// ExperimentalOpts are the RPC provider's experimental settings.
type ExperimentalOpts struct {
	CustomRequestPayload string `json:"customRequestPayload,omitempty"`
	DotPath              string `json:"dotPath,omitempty"`
}
