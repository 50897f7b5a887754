package boot_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/boot"
	"github.com/tinkops/tinkops/state"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// node01 allows PXE on its interface; its facility and agent id reach the
// kernel line.
const node01 = `
agentID: agent-01
metadata: {facility: {facility_code: ams1, plan_slug: c3.small}}
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:01", arch: x86_64, vlan_id: "42", ip: {address: 10.1.1.11, netmask: 255.255.255.0}}
    netboot: {allowPXE: true, allowWorkflow: true}
`

func TestScriptByMAC(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "node-01", node01)

	code, body, h := f.get("/ipxe/script/52:54:00:aa:00:01/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"))
	require.Contains(t, body, "worker_id=agent-01 hw_addr=52:54:00:aa:00:01")
	// Upper case and dashes are the same MAC.
	code, body2, _ := f.get("/ipxe/script/52-54-00-AA-00-01/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, body, body2)

	evs := f.netbootEvents("node-01")
	require.Len(t, evs, 2)
	require.Equal(t, "served auto.ipxe to 52:54:00:aa:00:01 (found by MAC 52:54:00:aa:00:01): the in-memory OS from http://10.0.0.1:8080/boot, allowPXE true, declared on the interface", evs[0])
}

func TestScriptBySourceIP(t *testing.T) {
	f := newFixture(t, boot.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/30")}})
	f.put(state.KindHardware, "node-01", node01)

	code, body, _ := f.get("/ipxe/script/auto.ipxe", "10.1.1.11:3000")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "hw_addr=52:54:00:aa:00:01")
	require.Contains(t, f.netbootEvents("node-01")[0], "(found by IP address 10.1.1.11)")

	t.Run("XForwardedForFromATrustedProxy", func(t *testing.T) {
		code, body, _ := f.get("/ipxe/script/auto.ipxe", "10.0.0.2:3000", "X-Forwarded-For", "203.0.113.5, 10.1.1.11, 10.0.0.1")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "hw_addr=52:54:00:aa:00:01")
	})
	t.Run("XForwardedForIgnoredFromAnUntrustedPeer", func(t *testing.T) {
		code, body, _ := f.get("/ipxe/script/auto.ipxe", "10.9.9.9:3000", "X-Forwarded-For", "10.1.1.11")
		require.Equal(t, http.StatusNotFound, code)
		require.Equal(t, "no hardware has IP address 10.9.9.9\n", body)
	})
	t.Run("BadXForwardedFor", func(t *testing.T) {
		code, body, _ := f.get("/ipxe/script/auto.ipxe", "10.0.0.2:3000", "X-Forwarded-For", "not-an-ip")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, `"not-an-ip" is not an IP address`)
	})
}

func TestAllowPXEGating(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "node-02", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:02"}
    netboot: {allowPXE: false}
`)
	exit := func() {
		t.Helper()
		code, body, _ := f.get("/ipxe/script/52:54:00:aa:00:02/auto.ipxe", "192.0.2.9:4000")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "#!ipxe\necho tinkops: netboot is not allowed for 52:54:00:aa:00:02 now; booting the next device\nexit\n", body)
	}
	auto := func() {
		t.Helper()
		code, body, _ := f.get("/ipxe/script/52:54:00:aa:00:02/auto.ipxe", "192.0.2.9:4000")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "\nboot || iseq")
	}
	last := func() string { evs := f.netbootEvents("node-02"); return evs[len(evs)-1] }

	exit()
	require.Equal(t, "served exit.ipxe to 52:54:00:aa:00:02 (found by MAC 52:54:00:aa:00:02): netboot not allowed, allowPXE false, declared on the interface; the firmware boots the next device", last())

	// A run with toggleAllowNetboot sets allowPXE true: the runtime value
	// wins over the declared false.
	f.run("wf-a", "node-02", 1, state.RunRunning, ptr(true))
	f.later()
	auto()
	require.Contains(t, last(), "served auto.ipxe")
	require.Contains(t, last(), "allowPXE true, set by run 1 of workflow wf-a (toggleAllowNetboot, run RUNNING)")

	// The run succeeds: allowPXE goes back to false, the machine boots its disk.
	f.run("wf-a", "node-02", 1, state.RunSuccess, ptr(false))
	exit()
	require.Contains(t, last(), "netboot not allowed, allowPXE false, set by run 1 of workflow wf-a (toggleAllowNetboot, run SUCCESS)")

	// A run that does not toggle leaves the newest toggling run in effect.
	f.run("wf-b", "node-02", 1, state.RunRunning, nil)
	f.later()
	exit()

	// Declared true and no run: the script.
	f.put(state.KindHardware, "node-03", "interfaces: [{dhcp: {mac: \"52:54:00:aa:00:03\"}, netboot: {allowPXE: true}}]")
	f.later()
	code, _, _ := f.get("/ipxe/script/52:54:00:aa:00:03/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	// Not declared at all: not allowed.
	f.put(state.KindHardware, "node-04", "interfaces: [{dhcp: {mac: \"52:54:00:aa:00:04\"}}]")
	f.later()
	_, body, _ := f.get("/ipxe/script/52:54:00:aa:00:04/auto.ipxe", "192.0.2.9:4000")
	require.Contains(t, body, "\nexit\n")
	require.Contains(t, f.netbootEvents("node-04")[0], "allowPXE not declared on the interface (false)")
}

func TestCustomScripts(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "chained", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:05"}
    netboot: {allowPXE: true, ipxe: {url: "https://boot.example.com/custom.ipxe"}}
`)
	f.put(state.KindHardware, "contents", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:06"}
    netboot: {allowPXE: true, ipxe: {contents: "#!ipxe\nsanboot http://images.example.com/rescue.iso\n"}}
`)
	f.put(state.KindHardware, "bad-url", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:07"}
    netboot: {allowPXE: true, ipxe: {url: "tftp://10.0.0.1/x.ipxe"}}
`)
	code, body, _ := f.get("/ipxe/script/52:54:00:aa:00:05/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "#!ipxe\nchain --autofree https://boot.example.com/custom.ipxe\n", body)
	require.Contains(t, f.netbootEvents("chained")[0], "served a chain to netboot.ipxe.url https://boot.example.com/custom.ipxe")

	code, body, _ = f.get("/ipxe/script/52:54:00:aa:00:06/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "#!ipxe\nsanboot http://images.example.com/rescue.iso\n", body)
	require.Contains(t, f.netbootEvents("contents")[0], "served netboot.ipxe.contents (52 bytes)")

	code, body, _ = f.get("/ipxe/script/52:54:00:aa:00:07/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Equal(t, "hardware bad-url: netboot.ipxe.url is not an http(s) URL\n", body)
	require.Contains(t, f.netbootEvents("bad-url")[0], `netboot.ipxe.url "tftp://10.0.0.1/x.ipxe" is not an http(s) URL`)
}

func TestOSIEOverrides(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "osie", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:08", arch: aarch64}
    netboot:
      allowPXE: true
      osie: {baseURL: "http://mirror.example.com/hook/", kernel: vmlinuz-custom, initrd: initrd-custom, kernelParams: [quiet, "rd.debug=1"]}
`)
	code, body, _ := f.get("/ipxe/script/52:54:00:aa:00:08/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "set arch aarch64\nset download-url http://mirror.example.com/hook\nset kernel vmlinuz-custom\nset initrd initrd-custom\n")
	require.Contains(t, body, " tink_server=http://10.0.0.1:42113 quiet rd.debug=1 && goto download_initrd")
	require.Contains(t, f.netbootEvents("osie")[0], "the in-memory OS from http://mirror.example.com/hook,")

	// A space in a declared value would add to the kernel line or the script.
	f.put(state.KindHardware, "osie", `
interfaces:
  - dhcp: {mac: "52:54:00:aa:00:08"}
    netboot: {allowPXE: true, osie: {kernelParams: ["a b"]}}
`)
	f.later()
	code, body, _ = f.get("/ipxe/script/52:54:00:aa:00:08/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Equal(t, "hardware osie: kernel argument \"a b\": contains a space or control character\n", body)
}

// TestKernelLine pins the whole default script, kernel line included, to a
// golden file: Smee's parameters in Smee's order (HookOS reads them), then
// tink_server= and the extra arguments.
func TestKernelLine(t *testing.T) {
	f := newFixture(t, boot.Config{APIPort: 42113, TLS: true, SyslogHost: "logs.example.com",
		KernelArgs: []string{"tink_worker_image=quay.io/tinkerbell/tink-worker:v0.12.1", "console=ttyS0"}})
	f.put(state.KindHardware, "node-01", strings.Replace(node01, "allowWorkflow: true}", "allowWorkflow: true, osie: {kernelParams: [ip=dhcp]}}", 1))
	code, body, _ := f.get("/ipxe/script/52:54:00:aa:00:01/auto.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code, body)
	golden := filepath.Join("testdata", "auto.ipxe")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(body), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), body)

	var kernel string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "kernel ") {
			kernel = l
		}
	}
	require.Equal(t, "kernel ${download-url}/${kernel} vlan_id=42 facility=ams1 syslog_host=logs.example.com grpc_authority=10.0.0.1:42113 "+
		"tinkerbell_tls=true tinkerbell_insecure_tls=false worker_id=agent-01 hw_addr=52:54:00:aa:00:01 "+
		"modules=loop,squashfs,sd-mod,usb-storage intel_iommu=on iommu=pt initrd=${initrd} console=tty0 console=ttyS1,115200 "+
		"tink_server=https://10.0.0.1:42113 tink_worker_image=quay.io/tinkerbell/tink-worker:v0.12.1 console=ttyS0 ip=dhcp "+
		"&& goto download_initrd || iseq ${idx} ${retries} && goto kernel_error || inc idx && echo retry in ${retry_delay} seconds ; sleep ${retry_delay} ; goto retry_kernel", kernel)

	t.Run("APIURL", func(t *testing.T) {
		f := newFixture(t, boot.Config{APIURL: "https://tink.example.com", PublicURL: "http://boot.example.com:8080/"})
		f.put(state.KindHardware, "node-01", node01)
		_, body, _ := f.get("/ipxe/script/52:54:00:aa:00:01/auto.ipxe", "192.0.2.9:4000")
		require.Contains(t, body, "set download-url http://boot.example.com:8080/boot\n")
		require.Contains(t, body, " grpc_authority=tink.example.com:443 ")
		require.Contains(t, body, " tink_server=https://tink.example.com ")
	})
}

func TestChainScript(t *testing.T) {
	f := newFixture(t, boot.Config{})
	code, body, _ := f.get("/ipxe/chain.ipxe", "192.0.2.9:4000")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "#!ipxe\n# tinkops: chain to this machine's script by its MAC\nchain --autofree http://10.0.0.1:8080/ipxe/script/${net0/mac}/auto.ipxe\n", body)
}

func TestScriptBadInput(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "node-01", node01)
	for _, c := range []struct {
		name, path string
		code       int
		body       string
	}{
		{"NotAMAC", "/ipxe/script/52:54:00:zz:00:01/auto.ipxe", http.StatusBadRequest, "\"52:54:00:zz:00:01\" is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)\n"},
		{"LongMAC", "/ipxe/script/00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01/auto.ipxe", http.StatusBadRequest, ""},
		{"DotDot", "/ipxe/script/../../etc/passwd", http.StatusBadRequest, "path must not contain ..\n"},
		{"EscapedDotDot", "/boot/%2e%2e/etc/passwd", http.StatusBadRequest, "path must not contain ..\n"},
		{"UnknownMAC", "/ipxe/script/52:54:00:aa:00:99/auto.ipxe", http.StatusNotFound, "no hardware has MAC 52:54:00:aa:00:99\n"},
		{"UnknownIP", "/ipxe/script/auto.ipxe", http.StatusNotFound, "no hardware has IP address 192.0.2.9\n"},
		{"UnknownPath", "/ipxe/script/52:54:00:aa:00:01/other.ipxe", http.StatusNotFound, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := f.get(c.path, "192.0.2.9:4000")
			require.Equal(t, c.code, code, body)
			if c.body != "" {
				require.Equal(t, c.body, body)
			}
		})
	}
	require.Empty(t, f.netbootEvents("node-01"))
}

// countingStore counts the fleet reads of a real store.
type countingStore struct {
	state.Store
	lists atomic.Int64
}

func (c *countingStore) ListObjects(ctx context.Context, q state.ObjectQuery) (*state.ObjectPage, error) {
	c.lists.Add(1)
	return c.Store.ListObjects(ctx, q)
}

// TestFleetBootingAtOnce: a hundred machines asking at once read the
// fleet (hardware and workflows) once, not once each.
func TestFleetBootingAtOnce(t *testing.T) {
	f := newFixture(t, boot.Config{})
	for i := range 100 {
		f.put(state.KindHardware, fmt.Sprintf("node-%03d", i), fmt.Sprintf("interfaces: [{dhcp: {mac: \"52:54:00:cc:00:%02x\"}, netboot: {allowPXE: true}}]", i))
	}
	cs := &countingStore{Store: f.store}
	srv, err := boot.New(boot.Config{Store: cs, APIPort: 42113, Now: f.clock})
	require.NoError(t, err)
	var wg sync.WaitGroup
	codes := make([]int, 100)
	for i := range 100 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("http://10.0.0.1:8080/ipxe/script/52:54:00:cc:00:%02x/auto.ipxe", i), nil)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			codes[i] = w.Code
		})
	}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, http.StatusOK, c, "machine %d", i)
	}
	require.Equal(t, int64(2), cs.lists.Load(), "one read of the hardware and one of the workflows")
	require.Len(t, f.netbootEvents("node-042"), 1)
}
