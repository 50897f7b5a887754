package schema

// Hardware is a machine tinkops provisions. Its spec is Tinkerbell's
// v1alpha1 HardwareSpec field for field (so existing manifests load
// unchanged), plus an inline bmc block.
type Hardware struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata" tink:"required"`
	Spec     HardwareSpec `json:"spec"`
	source
}

// GetKind returns KindHardware.
func (*Hardware) GetKind() string { return KindHardware }

// GetMeta returns the metadata.
func (h *Hardware) GetMeta() *ObjectMeta { return &h.Metadata }

// HardwareSpec is Tinkerbell's HardwareSpec plus BMC.
type HardwareSpec struct {
	AgentID     string               `json:"agentID,omitempty"`
	Auto        *AutoCapabilities    `json:"auto,omitempty"`
	BMCRef      *TypedObjectRef      `json:"bmcRef,omitempty"`
	Interfaces  []Interface          `json:"interfaces,omitempty"`
	References  map[string]Reference `json:"references,omitempty"`
	Metadata    *HardwareMetadata    `json:"metadata,omitempty"`
	TinkVersion int64                `json:"tinkVersion,omitempty"`
	Disks       []Disk               `json:"disks,omitempty"`
	// Resources are Kubernetes quantities ("4", "16Gi"), kept as written.
	Resources  map[string]string `json:"resources,omitempty" tink:"literal"`
	UserData   *string           `json:"userData,omitempty"`
	VendorData *string           `json:"vendorData,omitempty"`
	// BMC is tinkops' inline BMC connection; bmcRef to a Rufio Machine gives
	// the same thing from a separate object.
	BMC *BMC `json:"bmc,omitempty"`
}

// AutoCapabilities is Tinkerbell's automatic enrollment switch.
type AutoCapabilities struct {
	EnrollmentEnabled bool `json:"enrollmentEnabled,omitempty"`
}

// TypedObjectRef is Kubernetes' TypedLocalObjectReference: bmcRef names a
// Machine of bmc.tinkerbell.org in the Hardware's namespace.
type TypedObjectRef struct {
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     string  `json:"kind" tink:"required"`
	Name     string  `json:"name" tink:"required"`
}

// Reference links any object to the Hardware for templates
// (.references.NAME in Tinkerbell); kept for compatibility.
type Reference struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Resource  string `json:"resource,omitempty"`
}

// BMC is how tinkops reaches a machine's baseboard management controller.
// Credentials are never in the repository: CredentialsRef names a folder in
// the server's secrets directory holding username and password files.
type BMC struct {
	Address        string `json:"address" tink:"required"`
	Port           int    `json:"port,omitempty"`
	Protocol       string `json:"protocol,omitempty"`
	CredentialsRef string `json:"credentialsRef" tink:"required"`
	InsecureTLS    bool   `json:"insecureTLS,omitempty"`
}

// Interface is one network interface. The Go field names are Tinkerbell's:
// templates read them, as in (index .Hardware.Interfaces 0).DHCP.Arch.
type Interface struct {
	Netboot     *Netboot `json:"netboot,omitempty"`
	Isoboot     *Isoboot `json:"isoboot,omitempty"`
	DHCP        *DHCP    `json:"dhcp,omitempty"`
	DisableDHCP bool     `json:"disableDhcp,omitempty"`
}

// Netboot says whether and how the interface may PXE boot.
type Netboot struct {
	AllowPXE      *bool     `json:"allowPXE,omitempty"`
	AllowWorkflow *bool     `json:"allowWorkflow,omitempty"`
	IPXE          *IPXE     `json:"ipxe,omitempty"`
	OSIE          *OSIE     `json:"osie,omitempty"`
	PXELINUX      *PXELINUX `json:"pxelinux,omitempty"`
	RPI           *RPI      `json:"rpi,omitempty"`
}

// Isoboot boots the interface from an ISO image.
type Isoboot struct {
	SourceISO string `json:"sourceISO,omitempty"`
}

// IPXE overrides the iPXE script or binary.
type IPXE struct {
	URL      string `json:"url,omitempty"`
	Contents string `json:"contents,omitempty"`
	Binary   string `json:"binary,omitempty"`
}

// OSIE is the installation environment the machine boots into.
type OSIE struct {
	BaseURL      string   `json:"baseURL,omitempty"`
	Kernel       string   `json:"kernel,omitempty"`
	Initrd       string   `json:"initrd,omitempty"`
	KernelParams []string `json:"kernelParams,omitempty"`
}

// PXELINUX overrides the pxelinux.cfg served to u-boot.
type PXELINUX struct {
	Config string `json:"config,omitempty"`
}

// RPI is Raspberry Pi network boot configuration.
type RPI struct {
	ConfigTxt    string `json:"configTxt,omitempty"`
	FirmwarePath string `json:"firmwarePath,omitempty"`
	SerialNum    string `json:"serialNum" tink:"required"`
}

// DHCP is the lease the interface gets.
type DHCP struct {
	MAC                   string                 `json:"mac,omitempty"`
	Hostname              string                 `json:"hostname,omitempty"`
	DomainName            string                 `json:"domain_name,omitempty"`
	LeaseTime             int64                  `json:"lease_time,omitempty"`
	NameServers           []string               `json:"name_servers,omitempty"`
	TimeServers           []string               `json:"time_servers,omitempty"`
	Arch                  string                 `json:"arch,omitempty"`
	UEFI                  bool                   `json:"uefi,omitempty"`
	IfaceName             string                 `json:"iface_name,omitempty"`
	IP                    *IP                    `json:"ip,omitempty"`
	VLANID                string                 `json:"vlan_id,omitempty"`
	ClasslessStaticRoutes []ClasslessStaticRoute `json:"classless_static_routes,omitempty"`
	TFTPServerName        string                 `json:"tftp_server_name,omitempty"`
	BootFileName          string                 `json:"boot_file_name,omitempty"`
}

// IP is an interface address.
type IP struct {
	Address string `json:"address,omitempty"`
	Netmask string `json:"netmask,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	Family  int64  `json:"family,omitempty"`
}

// ClasslessStaticRoute is a DHCP option 121 route.
type ClasslessStaticRoute struct {
	DestinationDescriptor string `json:"destination_descriptor" tink:"required"`
	Router                string `json:"router" tink:"required"`
}

// Disk is a block device; templates see its Device as .Hardware.Disks.
type Disk struct {
	Device string `json:"device,omitempty"`
}

// HardwareMetadata is the metadata Tinkerbell's Hegel serves to the machine.
type HardwareMetadata struct {
	State        string                `json:"state,omitempty"`
	BondingMode  int64                 `json:"bonding_mode,omitempty"`
	Manufacturer *MetadataManufacturer `json:"manufacturer,omitempty"`
	Instance     *MetadataInstance     `json:"instance,omitempty"`
	Custom       *MetadataCustom       `json:"custom,omitempty"`
	Facility     *MetadataFacility     `json:"facility,omitempty"`
}

// MetadataManufacturer identifies the vendor.
type MetadataManufacturer struct {
	ID   string `json:"id,omitempty"`
	Slug string `json:"slug,omitempty"`
}

// MetadataInstance describes the installed instance.
type MetadataInstance struct {
	ID                  string                           `json:"id,omitempty"`
	State               string                           `json:"state,omitempty"`
	Hostname            string                           `json:"hostname,omitempty"`
	AllowPxe            bool                             `json:"allow_pxe,omitempty"`
	Rescue              bool                             `json:"rescue,omitempty"`
	OperatingSystem     *MetadataInstanceOperatingSystem `json:"operating_system,omitempty"`
	AlwaysPxe           bool                             `json:"always_pxe,omitempty"`
	IpxeScriptURL       string                           `json:"ipxe_script_url,omitempty"`
	Ips                 []*MetadataInstanceIP            `json:"ips,omitempty"`
	Userdata            string                           `json:"userdata,omitempty"`
	CryptedRootPassword string                           `json:"crypted_root_password,omitempty"`
	Tags                []string                         `json:"tags,omitempty"`
	Storage             *MetadataInstanceStorage         `json:"storage,omitempty"`
	SSHKeys             []string                         `json:"ssh_keys,omitempty"`
	NetworkReady        bool                             `json:"network_ready,omitempty"`
}

// MetadataInstanceOperatingSystem is the instance's OS.
type MetadataInstanceOperatingSystem struct {
	Slug     string `json:"slug,omitempty"`
	Distro   string `json:"distro,omitempty"`
	Version  string `json:"version,omitempty"`
	ImageTag string `json:"image_tag,omitempty"`
	OsSlug   string `json:"os_slug,omitempty"`
}

// MetadataInstanceIP is an address of the instance.
type MetadataInstanceIP struct {
	Address    string `json:"address,omitempty"`
	Netmask    string `json:"netmask,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
	Family     int64  `json:"family,omitempty"`
	Public     bool   `json:"public,omitempty"`
	Management bool   `json:"management,omitempty"`
}

// MetadataInstanceStorage is the instance's disk layout.
type MetadataInstanceStorage struct {
	Disks       []*MetadataInstanceStorageDisk       `json:"disks,omitempty"`
	Raid        []*MetadataInstanceStorageRAID       `json:"raid,omitempty"`
	Filesystems []*MetadataInstanceStorageFilesystem `json:"filesystems,omitempty"`
}

// MetadataInstanceStorageDisk is one disk and its partitions.
type MetadataInstanceStorageDisk struct {
	Device     string                                  `json:"device,omitempty"`
	WipeTable  bool                                    `json:"wipe_table,omitempty"`
	Partitions []*MetadataInstanceStorageDiskPartition `json:"partitions,omitempty"`
}

// MetadataInstanceStorageDiskPartition is one partition.
type MetadataInstanceStorageDiskPartition struct {
	Label    string `json:"label,omitempty"`
	Number   int64  `json:"number,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Start    int64  `json:"start,omitempty"`
	TypeGUID string `json:"type_guid,omitempty"`
}

// MetadataInstanceStorageRAID is a software RAID array.
type MetadataInstanceStorageRAID struct {
	Name    string   `json:"name,omitempty"`
	Level   string   `json:"level,omitempty"`
	Devices []string `json:"devices,omitempty"`
	Spare   int64    `json:"spare,omitempty"`
}

// MetadataInstanceStorageFilesystem is a filesystem to create and mount.
type MetadataInstanceStorageFilesystem struct {
	Mount *MetadataInstanceStorageMount `json:"mount,omitempty"`
}

// MetadataInstanceStorageMount is where and how a filesystem is mounted.
type MetadataInstanceStorageMount struct {
	Device string                                         `json:"device,omitempty"`
	Format string                                         `json:"format,omitempty"`
	Files  []*MetadataInstanceStorageFile                 `json:"files,omitempty"`
	Create *MetadataInstanceStorageMountFilesystemOptions `json:"create,omitempty"`
	Point  string                                         `json:"point,omitempty"`
}

// MetadataInstanceStorageFile is a file written into a filesystem.
type MetadataInstanceStorageFile struct {
	Path     string `json:"path,omitempty"`
	Contents string `json:"contents,omitempty"`
	Mode     int64  `json:"mode,omitempty"`
	UID      int64  `json:"uid,omitempty"`
	GID      int64  `json:"gid,omitempty"`
}

// MetadataInstanceStorageMountFilesystemOptions are mkfs options.
type MetadataInstanceStorageMountFilesystemOptions struct {
	Force   bool     `json:"force,omitempty"`
	Options []string `json:"options,omitempty"`
}

// MetadataCustom holds Tinkerbell's custom metadata.
type MetadataCustom struct {
	PreinstalledOperatingSystemVersion *MetadataInstanceOperatingSystem `json:"preinstalled_operating_system_version,omitempty"`
	PrivateSubnets                     []string                         `json:"private_subnets,omitempty"`
}

// MetadataFacility is the machine's plan and site.
type MetadataFacility struct {
	PlanSlug        string `json:"plan_slug,omitempty"`
	PlanVersionSlug string `json:"plan_version_slug,omitempty"`
	FacilityCode    string `json:"facility_code,omitempty"`
}

// MACs returns the interface MAC addresses in declaration order.
func (h *Hardware) MACs() []string {
	var out []string
	for _, i := range h.Spec.Interfaces {
		if i.DHCP != nil && i.DHCP.MAC != "" {
			out = append(out, i.DHCP.MAC)
		}
	}
	return out
}

// HasMAC reports whether one of the hardware's interfaces has mac.
func (h *Hardware) HasMAC(mac string) bool {
	for _, m := range h.MACs() {
		if m == mac {
			return true
		}
	}
	return false
}
