package bmctest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinkops/tinkops/schema"
)

// missingTools is the failure when the simulator cannot run: BMC tests
// must run everywhere CI runs, so they fail rather than skip.
const missingTools = "install openipmi and ipmitool (.ci/run does)"

// IPMISim is a running ipmi_sim: a BMC on 127.0.0.1:Port (UDP, RMCP+) for
// one machine, whose chassis (power and boot device) is a shell script
// keeping state in files.
type IPMISim struct {
	// Host and Port are where the BMC listens (UDP).
	Host string
	Port int
	// User and Password log in; the password is random unless
	// WithPassword set it.
	User     string
	Password string

	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when ipmi_sim has exited
}

// chassisScript is ipmi_sim's chassis_control program. ipmi_sim runs it
// through the shell with arguments appended: "get power boot" wants
// "name:value" lines, "set power 1|0", "set reset 1", "set shutdown 1" and
// "set boot pxe|default|cdrom|bios|none" want nothing and exit 0 (anything
// else becomes an IPMI error). A soft shutdown powers off at once, as an
// OS that obeys the ACPI button would.
const chassisScript = `#!/bin/sh
d=%s
echo "$*" >> "$d/calls.log"
case "$1" in
get)
	shift
	for what in "$@"; do
		case "$what" in
		power) printf 'power:%%s\n' "$(cat "$d/power")" ;;
		boot) printf 'boot:%%s\n' "$(cat "$d/boot")" ;;
		esac
	done
	;;
set)
	case "$2" in
	power) echo "$3" > "$d/power" ;;
	boot) echo "$3" > "$d/boot" ;;
	shutdown) echo 0 > "$d/power" ;;
	esac
	;;
esac
exit 0
`

// lanConf is ipmi_sim's configuration. name is required: without it
// ipmi_sim prints "name not set in config file", keeps running and never
// opens its LAN port, so every session fails.
const lanConf = `name "tinkops"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 %d
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcdef
endlan
chassis_control "%s"
user 2 true "%s" "%s" admin 10 md5 md2 straight none
`

// bmcEmu sets up one BMC; with -n a bad line here fails silently (the
// simulator runs, sessions fail), so it is kept exactly as measured.
const bmcEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// StartIPMI starts an IPMI BMC simulator on a free UDP port of 127.0.0.1
// and returns once ipmitool gets an answer from it; t.Cleanup stops it.
// It fails the test (never skips) when ipmi_sim or ipmitool is missing.
func StartIPMI(t testing.TB, opts ...Option) *IPMISim {
	t.Helper()
	o := newOptions(opts)
	for _, tool := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("bmctest: %s not found: %s", tool, missingTools)
		}
	}
	if strings.ContainsAny(o.user+o.password, "\" \t\n\\'") || len(o.password) > 20 {
		t.Fatalf("bmctest: IPMI user and password must be at most 20 characters without spaces or quotes")
	}
	// A directory of our own under the system temp dir: its path goes
	// into a shell command line, so it must not contain spaces, which a
	// test's TempDir (named after the test) might.
	dir, err := os.MkdirTemp("", "ipmi-sim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	s := &IPMISim{Host: "127.0.0.1", User: o.user, Password: o.password, dir: dir}
	power := "0"
	if o.power {
		power = "1"
	}
	script := filepath.Join(dir, "chassis_control")
	files := map[string]string{
		"power":     power + "\n",
		"boot":      "none\n",
		"calls.log": "",
		"bmc.emu":   bmcEmu,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(script, fmt.Appendf(nil, chassisScript, shellQuote(dir)), 0o700); err != nil {
		t.Fatal(err)
	}

	if o.chassis != "" {
		script = o.chassis
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := freeUDPPort()
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(t, port, script); lastErr == nil {
			return s
		}
	}
	t.Fatalf("bmctest: ipmi_sim did not answer: %v", lastErr)
	return nil
}

// start runs ipmi_sim on port and waits until it answers; on failure it
// stops the process and says why, with ipmi_sim's own output.
func (s *IPMISim) start(t testing.TB, port int, script string) error {
	conf := fmt.Sprintf(lanConf, port, script, s.User, s.Password)
	if err := os.WriteFile(filepath.Join(s.dir, "lan.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	stateDir := filepath.Join(s.dir, fmt.Sprintf("state-%d", port))
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	// ipmi_sim's own output goes to a file, read when it fails to start.
	logFile := filepath.Join(s.dir, fmt.Sprintf("ipmi_sim-%d.log", port))
	out, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer out.Close()
	said := func() string {
		b, _ := os.ReadFile(logFile)
		return strings.TrimSpace(string(b))
	}
	cmd := exec.Command("ipmi_sim", "-c", filepath.Join(s.dir, "lan.conf"), "-f", filepath.Join(s.dir, "bmc.emu"), "-s", stateDir, "-n")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ipmi_sim: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	s.Port = port
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.probe()
		if err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("ipmi_sim exited (%v): %q", waitErr, said())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("no answer on 127.0.0.1:%d within 10s: %v; ipmi_sim said: %q", port, err, said())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd, s.done = cmd, done
	t.Cleanup(stop)
	// The probe's "get power" is not something a test asked for.
	s.ResetCalls()
	return nil
}

// probe asks for the power status once, briefly.
func (s *IPMISim) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ipmitool", "-I", "lanplus", "-H", s.Host, "-p", strconv.Itoa(s.Port),
		"-U", s.User, "-E", "-C", "3", "-R", "1", "-N", "1", "chassis", "power", "status")
	cmd.Env = []string{"IPMITOOL_PASSWORD=" + s.Password}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stop stops the simulator now (a BMC that stops answering); the port then
// has nobody listening.
func (s *IPMISim) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Calls returns what the BMC told the chassis so far, one line per call:
// "get power", "set power 0", "get boot", "set boot pxe" (ipmitool's
// "disk" arrives as "default"), "set reset 1", "set shutdown 1".
func (s *IPMISim) Calls() []string {
	b, err := os.ReadFile(filepath.Join(s.dir, "calls.log"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// SetCalls returns the calls that changed something ("set ..."), in
// order, dropping reads.
func (s *IPMISim) SetCalls() []string {
	var out []string
	for _, c := range s.Calls() {
		if strings.HasPrefix(c, "set ") {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the calls so far.
func (s *IPMISim) ResetCalls() {
	_ = os.WriteFile(filepath.Join(s.dir, "calls.log"), nil, 0o600)
}

// Power returns the chassis power state: "on" or "off".
func (s *IPMISim) Power() string {
	if s.readFile("power") == "1" {
		return "on"
	}
	return "off"
}

// Boot returns the boot device last set: "none", "pxe", "default" (disk),
// "cdrom", "bios".
func (s *IPMISim) Boot() string { return s.readFile("boot") }

// SetPower changes the power state behind the server's back, as someone
// pressing the power button does.
func (s *IPMISim) SetPower(on bool) {
	v := "0\n"
	if on {
		v = "1\n"
	}
	_ = os.WriteFile(filepath.Join(s.dir, "power"), []byte(v), 0o600)
}

// WaitPower waits until the power state is want ("on" or "off"); a power
// cycle turns power on about a second after it turned it off.
func (s *IPMISim) WaitPower(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Power() != want {
		if time.Now().After(deadline) {
			t.Fatalf("bmctest: power is %s after %s, want %s; calls: %q", s.Power(), timeout, want, s.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *IPMISim) readFile(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	return strings.TrimSpace(string(b))
}

// BMC returns the inline bmc block of a Hardware managed by this BMC,
// whose credentials are in the secret credentialsRef.
func (s *IPMISim) BMC(credentialsRef string) *schema.BMC {
	return &schema.BMC{Address: s.Host, Port: s.Port, Protocol: "ipmi", CredentialsRef: credentialsRef}
}

// freeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago.
func freeUDPPort() (int, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	return port, pc.Close()
}

// ClosedUDPPort returns a UDP port of 127.0.0.1 with nobody listening, for
// a BMC that does not answer.
func ClosedUDPPort(t testing.TB) int {
	t.Helper()
	port, err := freeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
