// Package lab_test is `make lab`: a virtual machine provisioned end to end
// by tinkops alone. QEMU (TCG) with the iPXE ROM is the machine, an
// ipmi_sim BMC whose chassis_control starts and stops it is its BMC,
// tink-server (with --boot-listen and --boot-dir) follows a Git repository
// that declares the Hardware, a template and a workflow with bootOptions
// {toggleAllowNetboot: true, bootMode: netboot}, and the machine boots
// tinkops's own boot image (make bootimage), whose tink-worker writes a
// known image onto the machine's disk.
package lab_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/citest"
	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/state"
)

const (
	mac = "52:54:00:7a:b0:01"
	// diskMessage is what the image's boot sector prints on the serial
	// console: the machine booted its disk after tinkops said "exit".
	diskMessage = "tinkops-lab: booted from disk"
	// markerOffset is where the writefile action writes markerText.
	markerOffset = 8 << 20
	markerText   = "provisioned by tinkops, run 1"
)

// needTools fails the lab under CI (a missing tool there is a broken CI,
// which a skip would hide) and skips it on a developer's machine.
func needTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "ipmi_sim", "ipmitool", "cpio", "busybox", "apt-get", "dpkg", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
		missing = append(missing, "ipxe-qemu (/usr/lib/ipxe/qemu/efi-virtio.rom)")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("the lab needs %s: apt-get install --no-install-recommends qemu-system-x86 ipxe-qemu qemu-utils cpio busybox-static openipmi ipmitool git (.ci/run installs them)", strings.Join(missing, ", "))
	citest.Missing(t, msg)
}

// clock prints how long each step took.
type clock struct {
	t     *testing.T
	start time.Time
	last  time.Time
	steps []string
}

func (c *clock) step(what string) {
	now := time.Now()
	line := fmt.Sprintf("%-58s %6.1fs  (at %5.1fs)", what, now.Sub(c.last).Seconds(), now.Sub(c.start).Seconds())
	c.steps = append(c.steps, line)
	c.t.Log(line)
	c.last = now
}

func TestLab(t *testing.T) {
	needTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	clk := &clock{t: t, start: time.Now(), last: time.Now()}
	defer func() {
		t.Logf("lab step times:\n  %s", strings.Join(clk.steps, "\n  "))
	}()

	// A directory of our own without spaces: its paths go into
	// ipmi_sim's chassis_control shell line.
	work, err := os.MkdirTemp("", "tinkops-lab-")
	require.NoError(t, err)
	var leftPorts []string
	ipmiPort := 0
	// Registered first, so it runs last: after every other cleanup, the
	// lab must have left no process, file or port behind.
	t.Cleanup(func() {
		require.NoError(t, os.RemoveAll(work))
		require.Empty(t, processesNaming(t, work), "processes of the lab still run")
		_, err := os.Stat(work)
		require.True(t, os.IsNotExist(err), "the lab's directory is left behind")
		for _, addr := range leftPorts {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			require.Error(t, err, "something still listens on %s", addr)
		}
		if ipmiPort != 0 {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", ipmiPort))
			require.NoError(t, err, "the BMC's UDP port is still taken")
			pc.Close()
		}
	})

	// 1. Binaries: static, so tink-worker runs in the initramfs.
	bin := filepath.Join(work, "bin")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin+"/", "../../cmd/tink-server", "../../cmd/tink-worker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	clk.step("build tink-server and tink-worker")

	// 2. The boot image, as make bootimage builds it (kernel cached
	// outside the repository), plus the disk image the workflow writes.
	bootDir := filepath.Join(work, "boot")
	bi := exec.CommandContext(ctx, "bash", "bootimage/build.sh", bootDir, filepath.Join(bin, "tink-worker"))
	out, err = bi.CombinedOutput()
	require.NoError(t, err, "make bootimage: %s", out)
	t.Logf("%s", bytes.TrimSpace(out))
	image := diskImage()
	require.NoError(t, os.WriteFile(filepath.Join(bootDir, "lab-disk.img"), image, 0o644))
	sum := sha256.Sum256(image)
	vm := filepath.Join(work, "vm")
	require.NoError(t, os.MkdirAll(vm, 0o755))
	disk := filepath.Join(vm, "disk.img")
	out, err = exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "raw", disk, "64M").CombinedOutput()
	require.NoError(t, err, "%s", out)
	clk.step("boot image (make bootimage) and a blank 64 MiB disk")

	// 3. The BMC: ipmi_sim whose chassis_control is the VM's power.
	chassis, err := filepath.Abs("chassis.sh")
	require.NoError(t, err)
	ipmi := bmctest.StartIPMI(t, bmctest.WithChassisControl(chassis+" "+vm))
	ipmiPort = ipmi.Port
	// Whatever happens, the VM is off before the BMC goes (cleanups run
	// last-in first-out: this one runs before bmctest stops ipmi_sim).
	t.Cleanup(func() { _ = exec.Command(chassis, vm, "set", "power", "0").Run() })

	// 4. The repository: the Hardware first; template and workflow once
	// the server's ports are known (the template names the image's URL).
	repo := gittest.NewRepo(t)
	repo.Commit("lab hardware", map[string]string{"hardware/lab-01.yaml": fmt.Sprintf(hardwareYAML, ipmi.Port)})
	secrets := filepath.Join(work, "secrets", "bmc-lab-01")
	require.NoError(t, os.MkdirAll(secrets, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "username"), []byte(ipmi.User), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "password"), []byte(ipmi.Password), 0o600))
	// The credential goes to this BMC's address and nowhere else (SECURITY.md).
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "allowed-hosts"), []byte(ipmi.Host+"\n"), 0o600))

	// 5. tink-server, with the machine-facing listener and the boot files.
	logFile, err := os.Create(filepath.Join(work, "tink-server.log"))
	require.NoError(t, err)
	defer logFile.Close()
	srv := exec.Command(filepath.Join(bin, "tink-server"), "--repo", repo.FileURL(), "--poll-interval", "1s",
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(work, "data"), "--secrets-dir", filepath.Join(work, "secrets"),
		"--boot-listen", "127.0.0.1:0", "--boot-dir", bootDir, "--boot-kernel-args", "console=ttyS0", "--log-format", "text")
	srv.Env = append(os.Environ(), "TINK_TOKEN=", "TINK_SERVER=")
	srv.Stderr = logFile
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, srv.Start())
	apiAddr, bootAddr := readAddresses(t, stdout)
	exited := make(chan error, 1)
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		exited <- srv.Wait()
	}()
	stopped := false
	stopServer := func() {
		if stopped {
			return
		}
		stopped = true
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			require.NoError(t, err, "tink-server did not stop cleanly")
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-exited
			t.Error("tink-server did not stop within 20 s of SIGTERM")
		}
	}
	t.Cleanup(stopServer)
	leftPorts = append(leftPorts, apiAddr, bootAddr)
	_, bootPort, _ := net.SplitHostPort(bootAddr)
	c, err := client.New("http://"+apiAddr, "", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Sync.LastAppliedRevision != ""
	}, 30*time.Second, 100*time.Millisecond, "the first revision was not applied")
	clk.step("BMC, Git repository, tink-server up and synced")

	// The VM: 10.0.2.2 in QEMU's user network is this machine's loopback,
	// where tink-server listens; the iPXE ROM starts at the chain script.
	env := fmt.Sprintf("QEMU=%s\nMAC=%s\nDISK=%s\nBOOTFILE=http://10.0.2.2:%s/ipxe/chain.ipxe\n", mustLook(t, "qemu-system-x86_64"), mac, disk, bootPort)
	require.NoError(t, os.WriteFile(filepath.Join(vm, "vm.env"), []byte(env), 0o644))

	// 6. The workflow: commit, and follow what happens.
	imgURL := fmt.Sprintf("http://10.0.2.2:%s/boot/lab-disk.img", bootPort)
	repo.Commit("provision lab-01", map[string]string{
		"templates/lab.yaml":   fmt.Sprintf(templateYAML, imgURL, hex.EncodeToString(sum[:]), markerOffset, markerText),
		"workflows/lab.yaml":   workflowYAML,
		"hardware/lab-01.yaml": fmt.Sprintf(hardwareYAML, ipmi.Port),
	})
	f := &follower{t: t, c: c}
	console := filepath.Join(vm, "console.log")
	fail := func(what string) string {
		b, _ := os.ReadFile(console)
		l, _ := os.ReadFile(filepath.Join(work, "tink-server.log"))
		calls, _ := os.ReadFile(filepath.Join(vm, "calls.log"))
		return fmt.Sprintf("%s\n--- events:\n%s\n--- BMC calls:\n%s\n--- console (tail):\n%s\n--- tink-server log (tail):\n%s",
			what, strings.Join(f.story(), "\n"), calls, tail(b, 3000), tail(l, 3000))
	}
	wait := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatal(fail("timed out waiting: " + what))
			}
			time.Sleep(200 * time.Millisecond)
			f.poll(ctx)
		}
		clk.step(what)
	}
	wait("workflow applied; BMC: power off, PXE once, power on", 60*time.Second, func() bool {
		return f.has(state.EventRunState, `PREPARING -> RUNNING`)
	})
	wait("firmware + iPXE fetched tinkops's script (auto.ipxe)", 90*time.Second, func() bool {
		return f.has(state.EventNetboot, `^served auto\.ipxe to `+mac)
	})
	wait("kernel + initramfs booted, tink-worker runs the first action", 240*time.Second, func() bool {
		return f.hasAction("stream-image", state.RunRunning)
	})
	wait("image streamed onto /dev/vda and its sha256 checked", 60*time.Second, func() bool {
		return f.hasAction("stream-image", state.RunSuccess) || f.hasAction("stream-image", state.RunFailed)
	})
	wait("marker written; reboot action reported; run ended", 60*time.Second, func() bool {
		return f.has(state.EventRunState, `-> (SUCCESS|FAILED|TIMEOUT)`)
	})
	require.True(t, f.has(state.EventRunState, `RUNNING -> SUCCESS`), fail("the run did not succeed"))
	wait("rebooted; the next netboot got exit.ipxe", 90*time.Second, func() bool {
		return f.has(state.EventNetboot, `^served exit\.ipxe to `+mac+`.*allowPXE false, set by run 1 of workflow lab-provision`)
	})
	wait("firmware booted the disk tinkops wrote", 60*time.Second, func() bool {
		b, _ := os.ReadFile(console)
		return bytes.Contains(b, []byte(diskMessage))
	})

	// 7. What the machine got: the image's bytes and the marker, on the
	// disk, read after the VM is powered off through tinkops's API.
	res, err := c.Power(ctx, "", "lab-01", "off")
	require.NoError(t, err)
	require.Equal(t, "off", res.Power, "%+v", res)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(vm, "qemu.pid"))
		return os.IsNotExist(err)
	}, 10*time.Second, 100*time.Millisecond, "the VM did not power off")
	got, err := os.ReadFile(disk)
	require.NoError(t, err)
	require.Len(t, got, 64<<20)
	require.True(t, bytes.Equal(image, got[:len(image)]), "the disk does not start with the image")
	require.Equal(t, markerText, string(got[markerOffset:markerOffset+len(markerText)]))
	require.Equal(t, make([]byte, 1<<20), got[len(image):len(image)+1<<20], "bytes after the image were touched")
	hw, err := c.Get(ctx, client.Hardware, "", "lab-01")
	require.NoError(t, err)
	require.NotNil(t, hw.Status.AllowPXE)
	require.False(t, *hw.Status.AllowPXE, "allowPXE is back to false after the run")
	clk.step("powered off through the API; disk bytes checked")

	// The whole story, in order.
	f.poll(ctx)
	story := f.story()
	t.Logf("the event story:\n  %s", strings.Join(story, "\n  "))
	requireInOrder(t, story,
		`run-state Workflow/lab-provision#1 .*-> PREPARING`,
		`bmc Workflow/lab-provision#1 .*power off: ok`,
		`bmc Workflow/lab-provision#1 .*boot device pxe once: ok`,
		`bmc Workflow/lab-provision#1 .*power on: ok`,
		`run-state Workflow/lab-provision#1 .*PREPARING -> RUNNING`,
		`netboot Hardware/lab-01 served auto\.ipxe to 52:54:00:7a:b0:01 \(found by MAC 52:54:00:7a:b0:01\): the in-memory OS from http://10\.0\.2\.2:\d+/boot, allowPXE true, set by run 1 of workflow lab-provision`,
		`action-state Workflow/lab-provision#1 stream-image RUNNING`,
		`action-state Workflow/lab-provision#1 stream-image SUCCESS .*streamed 4194304 bytes from http://10\.0\.2\.2:\d+/boot/lab-disk\.img onto /dev/vda, sha256 `+hex.EncodeToString(sum[:])+` \(checked\)`,
		`action-state Workflow/lab-provision#1 write-marker SUCCESS .*wrote 29 bytes at offset 8388608 of /dev/vda`,
		`action-state Workflow/lab-provision#1 reboot RUNNING`,
		`run-state Workflow/lab-provision#1 .*RUNNING -> SUCCESS: every action succeeded; PXE no longer allowed`,
		`netboot Hardware/lab-01 served exit\.ipxe to 52:54:00:7a:b0:01 .*netboot not allowed, allowPXE false, set by run 1 of workflow lab-provision`,
		`bmc Hardware/lab-01 power off: ok`,
	)
	requireInOrder(t, story, `action-state Workflow/lab-provision#1 reboot SUCCESS .*rebooting in 3 s`, `netboot Hardware/lab-01 served exit\.ipxe`)
	for _, l := range story {
		require.NotContains(t, l, ipmi.Password, "a BMC password in an event")
	}
	calls, err := os.ReadFile(filepath.Join(vm, "calls.log"))
	require.NoError(t, err)
	requireInOrder(t, strings.Split(string(calls), "\n"), `^set boot pxe$`, `^set power 1$`, `^set power 0$`)
	powers, err := os.ReadFile(filepath.Join(vm, "power.log"))
	require.NoError(t, err)
	require.Regexp(t, `(?s)^\d+ start boot order nc\n\d+ stop\n$`, string(powers), "one power-on (network first), one power-off")

	stopServer()
	clk.step("tink-server stopped")
	if l, err := os.ReadFile(filepath.Join(work, "tink-server.log")); err == nil {
		var served []string
		for _, line := range strings.Split(string(l), "\n") {
			if strings.Contains(line, "boot file served") {
				served = append(served, line)
			}
		}
		t.Logf("boot files served:\n  %s", strings.Join(served, "\n  "))
	}
}

// readAddresses reads the API's and the boot listener's addresses from
// tink-server's first lines.
func readAddresses(t *testing.T, r io.Reader) (api, boot string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	apiRe := regexp.MustCompile(`^tink-server listening on http://(\S+) `)
	bootRe := regexp.MustCompile(`^tink-server serving machines on http://(\S+) `)
	for (api == "" || boot == "") && sc.Scan() {
		if m := apiRe.FindStringSubmatch(sc.Text()); m != nil {
			api = m[1]
		}
		if m := bootRe.FindStringSubmatch(sc.Text()); m != nil {
			boot = m[1]
		}
	}
	require.NotEmpty(t, api, "tink-server did not say where it listens")
	require.NotEmpty(t, boot, "tink-server did not say where it serves machines")
	return api, boot
}

// follower reads the server's events as they come, remembering when each
// arrived.
type follower struct {
	t      *testing.T
	c      *client.Client
	since  uint64
	events []state.Event
}

func (f *follower) poll(ctx context.Context) {
	list, err := f.c.Events(ctx, client.EventOptions{Since: &f.since, Limit: 1000})
	if err != nil {
		f.t.Logf("events: %v", err)
		return
	}
	for _, ev := range list.Items {
		f.events = append(f.events, ev)
		f.since = ev.Seq
	}
}

func (f *follower) has(typ state.EventType, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, ev := range f.events {
		if ev.Type == typ && re.MatchString(ev.Message) {
			return true
		}
	}
	return false
}

func (f *follower) hasAction(action string, st state.RunState) bool {
	for _, ev := range f.events {
		if ev.Type == state.EventActionState && ev.Action == action && ev.State == st {
			return true
		}
	}
	return false
}

// story is one line per event: type, object, action and state, message.
func (f *follower) story() []string {
	var out []string
	for _, ev := range f.events {
		obj := state.ObjectKey{Kind: ev.Kind, Namespace: ev.Namespace, Name: ev.Name}.String()
		if ev.Run > 0 {
			obj += fmt.Sprintf("#%d", ev.Run)
		}
		line := fmt.Sprintf("%s %s", ev.Type, obj)
		if ev.Action != "" {
			line += " " + ev.Action + " " + string(ev.State)
		}
		out = append(out, line+" "+strings.ReplaceAll(ev.Message, "\n", " | "))
	}
	return out
}

// requireInOrder checks that lines match the patterns in order (other
// lines may come between).
func requireInOrder(t *testing.T, lines []string, patterns ...string) {
	t.Helper()
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		require.Less(t, i, len(lines), "no line matches %q after the earlier ones in:\n%s", p, strings.Join(lines, "\n"))
		i++
	}
}

// diskImage is the image the workflow streams onto the disk: a boot
// sector that prints diskMessage on the serial port, then 4 MiB of known
// pseudo-random bytes.
func diskImage() []byte {
	img := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{'t', 'i', 'n', 'k', 'o', 'p', 's'})
	_, _ = rng.Read(img[512:])
	// 16-bit real mode at 0x7c00: ds=0; si=message; print each byte to
	// COM1 (0x3f8) until the NUL; halt.
	code := []byte{
		0x31, 0xc0, // xor ax, ax
		0x8e, 0xd8, // mov ds, ax
		0xfc,             // cld
		0xbe, 0x16, 0x7c, // mov si, 0x7c16 (the message)
		0xba, 0xf8, 0x03, // mov dx, 0x3f8
		0xac,       // lodsb
		0x84, 0xc0, // test al, al
		0x74, 0x03, // jz +3 (hlt)
		0xee,       // out dx, al
		0xeb, 0xf8, // jmp lodsb
		0xf4,       // hlt
		0xeb, 0xfd, // jmp hlt
	}
	copy(img, code)
	copy(img[len(code):], "\r\n"+diskMessage+"\r\n\x00")
	img[510], img[511] = 0x55, 0xaa
	return img
}

func mustLook(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	require.NoError(t, err)
	return p
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// processesNaming lists running processes whose command line names dir,
// read from /proc (no ps on a minimal machine).
func processesNaming(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	var out []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // ended meanwhile
		}
		if line := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(line, dir) {
			out = append(out, line)
		}
	}
	return out
}

// hardwareYAML is the lab machine: its BMC is the ipmi_sim port, its MAC
// the VM's. allowPXE is declared false: only the workflow's
// toggleAllowNetboot lets it netboot, and only until the run succeeds.
const hardwareYAML = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: lab-01
spec:
  bmc: {address: 127.0.0.1, port: %d, protocol: ipmi, credentialsRef: bmc-lab-01}
  disks: [{device: /dev/vda}]
  interfaces:
    - dhcp:
        mac: "52:54:00:7a:b0:01"
        arch: x86_64
        hostname: lab-01
        ip: {address: 10.0.2.15, netmask: 255.255.255.0, gateway: 10.0.2.2}
      netboot: {allowPXE: false, allowWorkflow: true}
`

// templateYAML uses the boot image's actions by image name (the process
// runtime runs /actions/<name>), as a Tinkerbell template names hub
// actions.
const templateYAML = `version: "0.1"
name: lab-provision
global_timeout: 900
tasks:
  - name: provision
    worker: "{{.device_1}}"
    actions:
      - name: stream-image
        image: quay.io/tinkerbell/actions/image2disk:v1.0.0
        timeout: 300
        environment:
          IMG_URL: %s
          DEST_DISK: /dev/vda
          SHA256: %s
      - name: write-marker
        image: quay.io/tinkerbell/actions/writefile:v1.0.0
        timeout: 60
        environment:
          DEST_DISK: /dev/vda
          OFFSET: "%d"
          CONTENTS: "%s"
      - name: reboot
        image: quay.io/tinkerbell/actions/reboot:v1.0.0
        timeout: 60
`

const workflowYAML = `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: lab-provision
spec:
  templateRef: lab-provision
  hardwareRef: lab-01
  hardwareMap:
    device_1: "52:54:00:7a:b0:01"
  bootOptions: {toggleAllowNetboot: true, bootMode: netboot}
`
