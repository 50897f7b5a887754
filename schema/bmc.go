package schema

import (
	"path"
	"strings"
)

// BMCConnection is how to reach a Hardware's BMC. An inline bmc block and a
// bmcRef to a Rufio Machine give the same thing, so the BMC code has one
// input whichever way the operator wrote it.
type BMCConnection struct {
	Host string
	Port int
	// Protocol is ipmi (bmclib's ipmitool provider) or redfish (gofish).
	Protocol    string
	InsecureTLS bool
	// Secret names the folder with username and password files in the
	// server's secrets directory.
	Secret SecretRef
	// CipherSuite is the IPMI cipher suite, when the Machine sets one.
	CipherSuite string
	// From says where the connection was declared: "inline" or
	// "Machine/<namespace>/<name>".
	From string
}

// SecretRef names a secret in the secrets directory.
type SecretRef struct {
	Namespace string
	Name      string
}

// Paths returns the folders to look in, in order: <namespace>/<name>, then
// <name> (a flat secrets directory, as a single mounted secret gives).
func (r SecretRef) Paths() []string {
	if r.Name == "" {
		return nil
	}
	if r.Namespace == "" {
		return []string{r.Name}
	}
	return []string{path.Join(r.Namespace, r.Name), r.Name}
}

// Default ports by protocol.
const (
	DefaultIPMIPort    = 623
	DefaultRedfishPort = 443
)

// BMC returns the BMC connection of h, from its bmc block or the Machine
// its bmcRef names; false when it has neither (or the Machine is missing,
// which Load reports).
func (s *Set) BMC(h *Hardware) (*BMCConnection, bool) {
	if b := h.Spec.BMC; b != nil {
		c := &BMCConnection{
			Host:        b.Address,
			Port:        b.Port,
			Protocol:    b.Protocol,
			InsecureTLS: b.InsecureTLS,
			Secret:      SecretRef{Namespace: h.Metadata.Namespace, Name: b.CredentialsRef},
			From:        "inline",
		}
		if c.Protocol == "" {
			c.Protocol = "ipmi"
		}
		if c.Port == 0 {
			c.Port = defaultPort(c.Protocol)
		}
		return c, true
	}
	ref := h.Spec.BMCRef
	if ref == nil {
		return nil, false
	}
	for _, m := range s.Machines {
		if m.Metadata.Name == ref.Name && m.Metadata.Namespace == h.Metadata.Namespace {
			return machineConnection(m), true
		}
	}
	return nil, false
}

// machineConnection reads a Rufio Machine the way Rufio does: ipmitool
// first unless preferredOrder puts gofish (Redfish) first.
func machineConnection(m *Machine) *BMCConnection {
	conn := m.Spec.Connection
	c := &BMCConnection{
		Host:        conn.Host,
		Port:        conn.Port,
		Protocol:    "ipmi",
		InsecureTLS: conn.InsecureTLS,
		From:        "Machine/" + path.Join(m.Metadata.Namespace, m.Metadata.Name),
	}
	if a := conn.AuthSecretRef; a != nil {
		ns := a.Namespace
		if ns == "" {
			ns = m.Metadata.Namespace
		}
		c.Secret = SecretRef{Namespace: ns, Name: a.Name}
	}
	if po := conn.ProviderOptions; po != nil {
		if len(po.PreferredOrder) > 0 && strings.EqualFold(po.PreferredOrder[0], "gofish") {
			c.Protocol = "redfish"
			c.Port = DefaultRedfishPort
			if po.Redfish != nil && po.Redfish.Port != 0 {
				c.Port = po.Redfish.Port
			}
		}
		if po.IPMITOOL != nil {
			c.CipherSuite = po.IPMITOOL.CipherSuite
			if po.IPMITOOL.Port != 0 && c.Protocol == "ipmi" {
				c.Port = po.IPMITOOL.Port
			}
		}
	}
	if c.Port == 0 {
		c.Port = defaultPort(c.Protocol)
	}
	return c
}

func defaultPort(protocol string) int {
	if protocol == "redfish" {
		return DefaultRedfishPort
	}
	return DefaultIPMIPort
}
