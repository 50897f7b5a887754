package bmc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
	bmclibbmc "github.com/bmc-toolbox/bmclib/v2/bmc"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Client is one connection to one BMC: what the Controller needs from
// bmclib, as an interface so that tests and other protocols can stand in.
// Calls are made in order from one goroutine; every call must return by the
// context's deadline.
type Client interface {
	// Open logs in (IPMI: a first power status; Redfish: a session).
	Open(ctx context.Context) error
	// Close logs out; it is called after every successful Open.
	Close(ctx context.Context) error
	// PowerState reads the power state.
	PowerState(ctx context.Context) (Power, error)
	// SetPower does a power action other than status.
	SetPower(ctx context.Context, action PowerAction) error
	// SetBootDevice sets the next boot device: once, or persistent; efi
	// selects UEFI boot of that device.
	SetBootDevice(ctx context.Context, dev BootDevice, persistent, efi bool) error
	// InsertVirtualMedia attaches the image at url as kind ("CD", "DVD",
	// "Floppy", "USBStick"), ejecting what was there.
	InsertVirtualMedia(ctx context.Context, kind, url string) error
	// EjectVirtualMedia detaches the media of kind, if any.
	EjectVirtualMedia(ctx context.Context, kind string) error
	// Provider names the bmclib provider that answered the last call
	// ("ipmitool", "gofish").
	Provider() string
}

// Dialer builds Clients over bmclib v2. Its zero value works: IPMI through
// ipmitool, Redfish through gofish with certificates checked against the
// system roots.
type Dialer struct {
	// RootCAs verifies Redfish BMC certificates; nil uses the system
	// roots. A connection's InsecureTLS skips verification instead.
	RootCAs *x509.CertPool
	// Timeout is bmclib's per-provider timeout; 0 lets bmclib derive it
	// from each call's deadline, which is what a caller with deadlines
	// wants (only one provider is ever registered).
	Timeout time.Duration
}

// LoadCACerts reads a PEM bundle of CA certificates, for Redfish BMCs with
// certificates from a private CA (the server's --bmc-ca-file).
func LoadCACerts(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, state.Errorf(state.EINVALID, "BMC CA bundle: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, state.Errorf(state.EINVALID, "BMC CA bundle %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Dial returns a Client for conn, logging in with creds. It does no I/O:
// the connection is made by Open.
//
// bmclib registers eight providers and tries them all unless told
// otherwise; a BMC declared as ipmi or redfish gets exactly one, so that a
// failure is that protocol's answer and not the last of eight guesses.
func (d *Dialer) Dial(_ context.Context, conn schema.BMCConnection, creds Credentials) (Client, error) {
	if conn.Host == "" {
		return nil, state.Errorf(state.EINVALID, "BMC connection has no host")
	}
	protocol := conn.Protocol
	if protocol == "" {
		protocol = "ipmi"
	}
	port := conn.Port
	var opts []bmclib.Option
	var provider string
	switch protocol {
	case "ipmi":
		if port == 0 {
			port = schema.DefaultIPMIPort
		}
		// An unset cipher suite makes bmclib try 3, then 17, and report
		// 17's misleading "invalid authentication algorithm" when the
		// password is wrong; 3 is what every BMC we know accepts.
		suite := conn.CipherSuite
		if suite == "" {
			suite = "3"
		}
		opts = append(opts, bmclib.WithIpmitoolPort(strconv.Itoa(port)), bmclib.WithIpmitoolCipherSuite(suite))
		provider = "ipmitool"
	case "redfish":
		if port == 0 {
			port = schema.DefaultRedfishPort
		}
		opts = append(opts, bmclib.WithRedfishPort(strconv.Itoa(port)))
		if !conn.InsecureTLS {
			// bmclib skips certificate checks unless asked; a BMC's
			// password travels in this session, so check by default.
			opts = append(opts, bmclib.WithSecureTLS(d.RootCAs))
		}
		provider = "gofish"
	default:
		return nil, state.Errorf(state.EINVALID, "BMC protocol %q is not supported: want ipmi or redfish", conn.Protocol)
	}
	if d.Timeout > 0 {
		opts = append(opts, bmclib.WithPerProviderTimeout(d.Timeout))
	}
	cl := bmclib.NewClient(conn.Host, creds.Username, creds.Password, opts...)
	cl.Registry.Drivers = cl.Registry.For(provider)
	if len(cl.Registry.Drivers) == 0 {
		if provider == "ipmitool" {
			return nil, state.Errorf(state.EINTERNAL, "cannot talk IPMI to %s: ipmitool is not installed on the server (install ipmitool)", conn.Host)
		}
		return nil, state.Errorf(state.EINTERNAL, "cannot talk %s to %s: bmclib has no %s provider", protocol, conn.Host, provider)
	}
	return &bmclibClient{
		cl:       cl,
		protocol: protocol,
		addr:     net.JoinHostPort(conn.Host, strconv.Itoa(port)),
		provider: provider,
	}, nil
}

// bmclibClient is a Client over a bmclib client. It holds the bmclib
// client, whose exported fields carry the password, so it has a String
// method and must never be printed field by field.
type bmclibClient struct {
	cl       *bmclib.Client
	protocol string
	addr     string
	provider string // the provider that answered last
}

// String names the BMC, never the bmclib client inside.
func (c *bmclibClient) String() string { return c.protocol + " BMC " + c.addr }

// GoString is String, for %#v.
func (c *bmclibClient) GoString() string { return c.String() }

// Provider names the provider that answered the last call.
func (c *bmclibClient) Provider() string { return c.provider }

// note records which provider answered, from bmclib's metadata.
func (c *bmclibClient) note() {
	md := c.cl.GetMetadata()
	switch {
	case md.SuccessfulProvider != "":
		c.provider = md.SuccessfulProvider
	case len(md.SuccessfulOpenConns) > 0:
		c.provider = md.SuccessfulOpenConns[0]
	}
}

// Open logs in.
func (c *bmclibClient) Open(ctx context.Context) error {
	err := c.cl.Open(ctx)
	c.note()
	return c.wrap(ctx, "open", err)
}

// Close logs out. bmclib runs Close on a fresh 30-second context when ctx
// has already ended; the caller gives it a fresh deadline instead.
func (c *bmclibClient) Close(ctx context.Context) error {
	return c.wrap(ctx, "close", c.cl.Close(ctx))
}

// PowerState reads and normalises the power state.
func (c *bmclibClient) PowerState(ctx context.Context) (Power, error) {
	raw, err := c.cl.GetPowerState(ctx)
	c.note()
	if err != nil {
		return PowerUnknown, c.wrap(ctx, "read power state", err)
	}
	p := NormalizePower(raw)
	if p == PowerUnknown {
		return p, fmt.Errorf("read power state: the BMC answered %q, which is neither on nor off", strings.TrimSpace(raw))
	}
	return p, nil
}

// SetPower does a power action.
func (c *bmclibClient) SetPower(ctx context.Context, action PowerAction) error {
	if action == PowerActionStatus {
		_, err := c.PowerState(ctx)
		return err
	}
	ok, err := c.cl.SetPowerState(ctx, string(action))
	md := c.cl.GetMetadata()
	c.note()
	if err != nil && action == PowerActionSoft && softAccepted(md) {
		// bmclib's Redfish provider sends GracefulShutdown and then
		// reports (false, nil): "asked, not yet off", which bmclib turns
		// into "failed to set power state". The request was accepted;
		// whether the OS shuts down is the OS's business.
		c.provider = md.ProvidersAttempted[0]
		return nil
	}
	if err == nil && !ok {
		err = errors.New("the BMC did not confirm the power change")
	}
	return c.wrap(ctx, "power "+string(action), err)
}

// softAccepted reports whether a failed soft power-off failed only because
// the provider answered "not confirmed" without an error of its own.
func softAccepted(md bmclibbmc.Metadata) bool {
	return len(md.ProvidersAttempted) == 1 && len(md.FailedProviderDetail) == 0
}

// SetBootDevice sets the next boot device.
func (c *bmclibClient) SetBootDevice(ctx context.Context, dev BootDevice, persistent, efi bool) error {
	ok, err := c.cl.SetBootDevice(ctx, string(dev), persistent, efi)
	c.note()
	if err == nil && !ok {
		err = errors.New("the BMC did not confirm the boot device")
	}
	return c.wrap(ctx, "set boot device "+string(dev), err)
}

// InsertVirtualMedia attaches an image.
func (c *bmclibClient) InsertVirtualMedia(ctx context.Context, kind, url string) error {
	if url == "" {
		return state.Errorf(state.EINVALID, "insert virtual media: no image URL")
	}
	return c.virtualMedia(ctx, kind, url, "insert virtual media")
}

// EjectVirtualMedia detaches the media of kind.
func (c *bmclibClient) EjectVirtualMedia(ctx context.Context, kind string) error {
	return c.virtualMedia(ctx, kind, "", "eject virtual media")
}

func (c *bmclibClient) virtualMedia(ctx context.Context, kind, url, what string) error {
	if c.protocol == "ipmi" {
		// bmclib's ipmitool provider has no virtual media; saying so
		// beats bmclib's "no implementations found".
		return state.Errorf(state.EINVALID, "%s: virtual media needs a redfish BMC; %s is declared as ipmi", what, c.addr)
	}
	if kind == "" {
		kind = "CD"
	}
	ok, err := c.cl.SetVirtualMedia(ctx, kind, url)
	c.note()
	if err == nil && !ok {
		err = errors.New("the BMC did not confirm the virtual media change")
	}
	return c.wrap(ctx, what, err)
}

// wrap turns a bmclib error into one line that says what was attempted on
// which BMC. bmclib's errors are multi-line lists ("2 errors occurred:\n\t*
// provider: ipmitool: ..."); a deadline becomes "did not answer within".
func (c *bmclibClient) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: %s did not answer in time (%w)", what, c.addr, ctx.Err())
		}
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %s", what, oneLine(err.Error()))
}

// oneLine flattens bmclib's multierror text into "a; b", dropping the "N
// errors occurred:" header, bullets, duplicates, and bmclib's summary
// lines ("no Opener implementations found") when a provider said more.
func oneLine(msg string) string {
	var parts, summaries []string
	seen := map[string]bool{}
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimSpace(strings.TrimPrefix(line, "*"))
		if line == "" || strings.HasSuffix(line, "errors occurred:") || strings.HasSuffix(line, "error occurred:") || seen[line] {
			continue
		}
		seen[line] = true
		if bmclibSummary(line) {
			summaries = append(summaries, line)
			continue
		}
		parts = append(parts, line)
	}
	if len(parts) == 0 {
		parts = summaries
	}
	return strings.Join(parts, "; ")
}

// bmclibSummary reports whether line is one of the lines bmclib appends
// after the providers' own errors, which repeat what failed but not why.
func bmclibSummary(line string) bool {
	switch line {
	case "no Opener implementations found", "failed to get power state", "failed to set power state",
		"failed to set boot device", "failed to set virtual media", "failed to close connection":
		return true
	}
	return false
}
