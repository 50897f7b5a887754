package bmc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// The workflow engine's Preparer, restated here because this package
// cannot import the engine: the Controller must keep satisfying it.
var _ interface {
	Prepare(ctx context.Context, run *state.WorkflowRun, wf *schema.Workflow, hw *schema.Hardware) error
} = (*bmc.Controller)(nil)

// TestNormalizePower shows what BMCs say maps to on, off or unknown.
func TestNormalizePower(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bmc.Power{
		"Chassis Power is on\n":  bmc.PowerOn,
		"Chassis Power is off\n": bmc.PowerOff,
		"on":                     bmc.PowerOn,
		"On":                     bmc.PowerOn,
		"ON ":                    bmc.PowerOn,
		"poweron":                bmc.PowerOn,
		"PoweringOn":             bmc.PowerOn,
		"Off":                    bmc.PowerOff,
		"off":                    bmc.PowerOff,
		"PoweringOff":            bmc.PowerOff,
		"Chassis Power is off":   bmc.PowerOff,
		"power off":              bmc.PowerOff,
		"":                       bmc.PowerUnknown,
		"Paused":                 bmc.PowerUnknown,
		"Chassis Power is weird": bmc.PowerUnknown,
	} {
		require.Equal(t, want, bmc.NormalizePower(raw), "NormalizePower(%q)", raw)
	}
}

// TestParsePowerAction shows valid actions parse case-insensitively and
// anything else is EINVALID with the valid ones listed.
func TestParsePowerAction(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"on", "off", "cycle", "reset", "soft", "status", "ON", " Cycle "} {
		a, err := bmc.ParsePowerAction(s)
		require.NoError(t, err, s)
		require.Equal(t, strings.ToLower(strings.TrimSpace(s)), string(a))
	}
	_, err := bmc.ParsePowerAction("reboot")
	require.EqualError(t, err, `invalid: unknown power action "reboot": want one of on, off, cycle, reset, soft, status`)
	require.Equal(t, state.EINVALID, state.ErrorCode(err))

	d, err := bmc.ParseBootDevice("PXE")
	require.NoError(t, err)
	require.Equal(t, bmc.BootPXE, d)
	_, err = bmc.ParseBootDevice("usb")
	require.EqualError(t, err, `invalid: unknown boot device "usb": want one of pxe, disk, cdrom, bios`)
}

// TestStepsAndDescribe shows the sentences the plan uses per boot mode.
func TestStepsAndDescribe(t *testing.T) {
	t.Parallel()
	hw := hardware("node-01", &schema.BMC{Address: "10.0.0.9", CredentialsRef: "x"}, false)
	efi := hardware("node-02", &schema.BMC{Address: "10.0.0.9", CredentialsRef: "x"}, true)
	str := func(s string) *string { return &s }

	netboot := workflow("node-01", &schema.BootOptions{BootMode: "netboot", ToggleAllowNetboot: true})
	require.Equal(t, []string{"powered off", "set to PXE once", "powered on"}, bmc.Steps(netboot, hw))
	require.Equal(t, "node-01 will be powered off, set to PXE once, powered on", bmc.Describe(netboot, hw))
	require.Equal(t, "node-02 will be powered off, set to PXE once (EFI), powered on", bmc.Describe(netboot, efi))
	require.Nil(t, bmc.FinishSteps(netboot, hw))

	for _, mode := range []string{"iso", "isoboot"} {
		iso := workflow("node-01", &schema.BootOptions{BootMode: mode, ISOURL: "http://x/hook.iso"})
		require.Equal(t, "node-01 will be given virtual media http://x/hook.iso, set to CD-ROM once, power-cycled", bmc.Describe(iso, hw))
		require.Equal(t, []string{"rid of its virtual media"}, bmc.FinishSteps(iso, hw))
	}
	require.Equal(t, []string{"not prepared (bootMode iso needs bootOptions.isoURL)"},
		bmc.Steps(workflow("node-01", &schema.BootOptions{BootMode: "iso"}), hw))

	custom := workflow("node-01", &schema.BootOptions{BootMode: "customboot", CustombootConfig: &schema.CustombootConfig{
		PreparingActions: []schema.BMCAction{
			{PowerAction: str("soft")},
			{BootDevice: &schema.BootDeviceConfig{Device: "bios", Persistent: true}},
			{VirtualMediaAction: &schema.VirtualMediaAction{MediaURL: "http://x/fw.img", Kind: "USBStick"}},
			{PowerAction: str("cycle")},
			{PowerAction: str("hibernate")},
		},
		PostActions: []schema.BMCAction{{VirtualMediaAction: &schema.VirtualMediaAction{Kind: "USBStick"}}, {PowerAction: str("reset")}},
	}})
	require.Equal(t, []string{
		"shut down (soft)", "set to BIOS setup persistently", "given virtual media http://x/fw.img as USBStick", "power-cycled",
		`not prepared (unknown power action "hibernate": want one of on, off, cycle, reset, soft, status)`,
	}, bmc.Steps(custom, hw))
	require.Equal(t, []string{"rid of its virtual media", "reset"}, bmc.FinishSteps(custom, hw))

	// Nothing to do: no sentence.
	require.Nil(t, bmc.Steps(workflow("node-01", &schema.BootOptions{ToggleAllowNetboot: true}), hw))
	require.Empty(t, bmc.Describe(workflow("node-01", nil), hw))
	require.Equal(t, []string{`not prepared (unknown bootMode "pxe": want netboot, iso, isoboot or customboot)`},
		bmc.Steps(workflow("node-01", &schema.BootOptions{BootMode: "pxe"}), hw))
}

// TestCustombootInvalidActionRefused shows Prepare refuses a customboot
// with an invalid action before touching the BMC.
func TestCustombootInvalidActionRefused(t *testing.T) {
	t.Parallel()
	var dials int
	c, err := bmc.New(bmc.Config{Dial: func(context.Context, schema.BMCConnection, bmc.Credentials) (bmc.Client, error) {
		dials++
		return nil, errors.New("unreachable")
	}})
	require.NoError(t, err)
	bad := "hibernate"
	wf := workflow("node-01", &schema.BootOptions{BootMode: "customboot", CustombootConfig: &schema.CustombootConfig{
		PreparingActions: []schema.BMCAction{{PowerAction: &bad}},
	}})
	err = c.Prepare(context.Background(), nil, wf, hardware("node-01", &schema.BMC{Address: "10.0.0.9", CredentialsRef: "x"}, false))
	require.EqualError(t, err, `invalid: hardware node-01: bootMode customboot: unknown power action "hibernate": want one of on, off, cycle, reset, soft, status`)
	require.Zero(t, dials)
}

// TestCredentialsRedacted shows every way of printing Credentials hides
// the password.
func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	pass := bmctest.RandomPassword()
	c := bmc.Credentials{Username: "admin", Password: pass, Secret: "/s/bmc"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "creds", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "creds", c)
	js, err := json.Marshal(c)
	require.NoError(t, err)
	for _, out := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%v", &c), buf.String(), string(js),
	} {
		require.NotContains(t, out, pass)
		require.Contains(t, out, "admin")
	}
}

// TestSecretsResolve shows where credentials are looked for, that a
// trailing newline is dropped, and the errors for what is missing.
func TestSecretsResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bmctest.WriteSecret(t, dir, schema.SecretRef{Namespace: "rack-1", Name: "bmc-a"}, "ns-user", "ns-pass", "10.0.0.1")
	bmctest.WriteSecret(t, dir, schema.SecretRef{Name: "bmc-a"}, "flat-user", "flat-pass", "10.0.0.1")
	bmctest.WriteSecret(t, dir, schema.SecretRef{Name: "bmc-b"}, "b-user", "b-pass  ", "10.0.0.1")
	s := bmc.NewSecrets(dir)

	c, err := s.Resolve(schema.SecretRef{Namespace: "rack-1", Name: "bmc-a"}, "10.0.0.1")
	require.NoError(t, err)
	require.Equal(t, "ns-user", c.Username)
	require.Equal(t, "ns-pass", c.Password)
	c, err = s.Resolve(schema.SecretRef{Namespace: "rack-2", Name: "bmc-b"}, "10.0.0.1")
	require.NoError(t, err, "a flat secret serves every namespace")
	require.Equal(t, "b-pass  ", c.Password, "only the trailing newline goes")

	_, err = s.Resolve(schema.SecretRef{Namespace: "rack-1", Name: "bmc-node-01"}, "10.0.0.1")
	require.Equal(t, state.ENOTFOUND, state.ErrorCode(err))
	require.EqualError(t, err, `not_found: secret "rack-1/bmc-node-01" not found in secrets directory: want `+
		filepath.Join(dir, "rack-1/bmc-node-01/username")+" or "+filepath.Join(dir, "bmc-node-01/username"))

	require.NoError(t, os.Remove(filepath.Join(dir, "bmc-b", "username")))
	_, err = s.Resolve(schema.SecretRef{Name: "bmc-b"}, "10.0.0.1")
	require.EqualError(t, err, `not_found: secret "bmc-b" has no username file: want `+filepath.Join(dir, "bmc-b/username"))

	_, err = s.Resolve(schema.SecretRef{Name: ".."}, "10.0.0.1")
	require.Equal(t, state.EINVALID, state.ErrorCode(err))
	_, err = s.Resolve(schema.SecretRef{Namespace: "../etc", Name: "passwd"}, "10.0.0.1")
	require.Equal(t, state.EINVALID, state.ErrorCode(err))

	_, err = bmc.NewSecrets("").Resolve(schema.SecretRef{Name: "bmc-a"}, "10.0.0.1")
	require.EqualError(t, err, `invalid: cannot read BMC secret "bmc-a": no --secrets-dir configured`)
	_, err = bmc.NewSecrets(filepath.Join(dir, "nope")).Resolve(schema.SecretRef{Name: "bmc-a"}, "10.0.0.1")
	require.ErrorContains(t, err, "secrets directory "+filepath.Join(dir, "nope")+" does not exist")
}

// TestSecretsBoundToHosts: a secret goes only to the BMC addresses its
// allowed-hosts file lists (addresses, prefixes, names as written); a
// secret without the file goes nowhere, and the errors name the secret,
// the address and the file to write.
func TestSecretsBoundToHosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bmctest.WriteSecret(t, dir, schema.SecretRef{Name: "rack-1"}, "admin", "pw",
		"# rack 1's BMCs", "", "10.0.1.0/24", "  bmc-07.lab.example  ", "fd00::7", "[fd00::8]")
	bmctest.WriteSecret(t, dir, schema.SecretRef{Name: "old"}, "admin", "pw")
	s := bmc.NewSecrets(dir)
	ref := schema.SecretRef{Name: "rack-1"}
	for _, host := range []string{"10.0.1.9", "10.0.1.255", "BMC-07.lab.example", "fd00::7", "[fd00:0::7]", "fd00::8", "::ffff:10.0.1.3"} {
		c, err := s.Resolve(ref, host)
		require.NoError(t, err, host)
		require.Equal(t, "pw", c.Password)
	}
	file := filepath.Join(dir, "rack-1", "allowed-hosts")
	for _, host := range []string{"10.0.2.1", "bmc-07.lab.example.evil.test", "bmc-08.lab.example", "", "# rack 1's BMCs", "10.0.1.0/24", "fd00::9"} {
		_, err := s.Resolve(ref, host)
		require.Equal(t, state.EINVALID, state.ErrorCode(err), host)
		require.EqualError(t, err, fmt.Sprintf(`invalid: BMC secret "rack-1" may not be sent to %s: that address is not listed in %s`, host, file))
	}
	bmctest.WriteSecret(t, dir, schema.SecretRef{Namespace: "lab", Name: "old-too"}, "admin", "pw")
	bmctest.WriteSecret(t, dir, schema.SecretRef{Namespace: "lab", Name: "bound"}, "admin", "pw", "10.0.9.9")
	unbound, err := s.Unbound()
	require.NoError(t, err)
	require.Equal(t, []string{"lab/old-too", "old"}, unbound, "the secrets that go nowhere, for the warning at start")

	_, err = s.Resolve(schema.SecretRef{Name: "old"}, "10.0.1.9")
	require.EqualError(t, err, `invalid: BMC secret "old" may not be sent to 10.0.1.9: it is bound to no BMC address; list the addresses it is for, one a line, in `+
		filepath.Join(dir, "old", "allowed-hosts")+` (see SECURITY.md, "BMC credentials")`)
	require.NotContains(t, err.Error(), "pw")
}

// fakeClient is a Client that fails its first failures calls to SetPower
// with an error quoting the password, as a careless BMC or library might.
type fakeClient struct {
	mu       *sync.Mutex
	failures *int
	pass     string
	calls    *[]string
}

func (c fakeClient) record(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.calls = append(*c.calls, s)
}
func (c fakeClient) Open(context.Context) error  { c.record("open"); return nil }
func (c fakeClient) Close(context.Context) error { c.record("close"); return nil }
func (c fakeClient) PowerState(context.Context) (bmc.Power, error) {
	c.record("status")
	return bmc.PowerOn, nil
}
func (c fakeClient) SetPower(_ context.Context, a bmc.PowerAction) error {
	c.record("power " + string(a))
	c.mu.Lock()
	defer c.mu.Unlock()
	if *c.failures > 0 {
		*c.failures--
		return fmt.Errorf("login as admin/%s refused", c.pass)
	}
	return nil
}
func (c fakeClient) SetBootDevice(context.Context, bmc.BootDevice, bool, bool) error { return nil }
func (c fakeClient) InsertVirtualMedia(context.Context, string, string) error        { return nil }
func (c fakeClient) EjectVirtualMedia(context.Context, string) error                 { return nil }
func (c fakeClient) Provider() string                                                { return "fake" }

// fakeFixture is a fixture whose Dial returns fakeClients failing the
// first failures SetPower calls.
func fakeFixture(t *testing.T, cfg bmc.Config, failures int) (*fixture, *[]string) {
	t.Helper()
	var mu sync.Mutex
	calls := &[]string{}
	cfg.Dial = func(_ context.Context, _ schema.BMCConnection, creds bmc.Credentials) (bmc.Client, error) {
		return fakeClient{mu: &mu, failures: &failures, pass: creds.Password, calls: calls}, nil
	}
	f := newFixture(t, cfg)
	f.secret("bmc-node-01", "admin", bmctest.RandomPassword())
	return f, calls
}

// TestRetriesScrubAndBackoff shows failed attempts are retried after a
// doubling backoff, each attempt opening and closing its own connection,
// and that a password inside a BMC's message is scrubbed from the error,
// the event and the log.
func TestRetriesScrubAndBackoff(t *testing.T) {
	t.Parallel()
	f, calls := fakeFixture(t, bmc.Config{Retries: 3, Backoff: 100 * time.Millisecond}, 2)
	hw := hardware("node-01", &schema.BMC{Address: "10.0.0.9", CredentialsRef: "bmc-node-01"}, false)
	start := time.Now()
	res, err := f.ctrl.Power(context.Background(), hw, bmc.PowerActionReset, state.ActorReconciler)
	require.NoError(t, err)
	require.Equal(t, 3, res.Attempts)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "100 ms, then 200 ms")
	require.Equal(t, []string{"open", "power reset", "close", "open", "power reset", "close", "open", "power reset", "close"}, *calls)
	require.Contains(t, f.log.String(), "login as admin/******** refused", "failed attempts are logged, scrubbed")

	g, _ := fakeFixture(t, bmc.Config{Retries: 1, Backoff: time.Millisecond}, 5)
	_, err = g.ctrl.Power(context.Background(), hw, bmc.PowerActionReset, state.ActorReconciler)
	g.noLeak(err)
	require.EqualError(t, err, "internal: hardware node-01: power reset failed after 2 attempts: login as admin/******** refused")
	require.Equal(t, []string{"power reset failed after 2 attempts: login as admin/******** refused"}, messages(g.events("node-01")))
	require.Contains(t, g.ctrl.Status("", "node-01").Error, "********")
}

// TestContextBoundsRetries shows the caller's context ends the retries,
// waits included, and the failure still gets its event.
func TestContextBoundsRetries(t *testing.T) {
	t.Parallel()
	f, _ := fakeFixture(t, bmc.Config{Retries: 10, Backoff: time.Second}, 100)
	hw := hardware("node-01", &schema.BMC{Address: "10.0.0.9", CredentialsRef: "bmc-node-01"}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := f.ctrl.Power(ctx, hw, bmc.PowerActionCycle, state.ActorReconciler)
	f.noLeak(err)
	require.Error(t, err)
	require.Less(t, time.Since(start), 900*time.Millisecond)
	require.Equal(t, 1, res.Attempts)
	require.Len(t, f.events("node-01"), 1, "the event is written although ctx has ended")
}

// TestDoesNotImportReconciler keeps the dependency pointing from the
// reconciler to this package: the reconciler's plan imports bmc.
func TestDoesNotImportReconciler(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{".", "bmctest"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range parsed.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				if strings.HasPrefix(path, "github.com/tinkops/tinkops/") {
					require.Contains(t, []string{
						"github.com/tinkops/tinkops/schema", "github.com/tinkops/tinkops/state",
					}, path, "%s imports %s", file, path)
				}
			}
		}
	}
}
