package boot

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tinkops/tinkops/schema"
)

// The iPXE scripts. A machine's script is one of:
//   - auto: the in-memory OS (HookOS or tinkops's own image), with a kernel
//     line as Smee writes it plus tink_server=;
//   - chain: netboot.ipxe.url;
//   - contents: netboot.ipxe.contents, as declared;
//   - exit: netboot is not allowed now, so the firmware boots the next
//     device (the installed system).

// Retries of the default script's kernel, initrd and boot steps, and the
// seconds between them (Smee's defaults).
const (
	scriptRetries    = 10
	scriptRetryDelay = 2
)

// handleChain serves the generic script for DHCP setups that cannot put
// the MAC in the boot file name: it chains to the machine's own script by
// the MAC iPXE booted from.
func (s *Server) handleChain(w http.ResponseWriter, r *http.Request) {
	writeScript(w, "#!ipxe\n# tinkops: chain to this machine's script by its MAC\nchain --autofree "+s.baseURL(r)+"/ipxe/script/${net0/mac}/auto.ipxe\n")
}

// handleScript serves /ipxe/script/<mac>/auto.ipxe, or, without a MAC, the
// script of the machine at the request's source address.
func (s *Server) handleScript(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var m *machine
	var err error
	var what string
	if raw := r.PathValue("mac"); raw != "" {
		hw, perr := net.ParseMAC(raw)
		if perr != nil || len(hw) != 6 {
			http.Error(w, fmt.Sprintf("%q is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)", raw), http.StatusBadRequest)
			return
		}
		mac := hw.String()
		what = "MAC " + mac
		m, err = s.byMAC(ctx, mac)
	} else {
		ip, ierr := s.clientIP(r)
		if ierr != nil {
			http.Error(w, ierr.Error(), http.StatusBadRequest)
			return
		}
		what = "IP address " + ip.String()
		m, err = s.byIP(ctx, ip)
	}
	if err != nil {
		code, msg := lookupStatus(err, what)
		if code >= 500 {
			s.log.Error("iPXE script lookup failed", "for", what, "err", err)
		}
		http.Error(w, msg, code)
		return
	}
	allowed, why, err := s.allowPXE(ctx, m)
	if err != nil {
		s.log.Error("allowPXE not readable", "hardware", m.hw.Metadata.Name, "err", err)
		http.Error(w, "internal error; see the server's log", http.StatusInternalServerError)
		return
	}
	found := "found by " + what
	if !allowed {
		s.event(ctx, m, fmt.Sprintf("served exit.ipxe to %s (%s): netboot not allowed, %s; the firmware boots the next device", m.mac, found, why))
		writeScript(w, "#!ipxe\necho tinkops: netboot is not allowed for "+m.mac+" now; booting the next device\nexit\n")
		return
	}
	n := netboot{m.iface.Netboot}
	switch {
	case n.ipxeURL() != "":
		u, err := url.Parse(n.ipxeURL())
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(n.ipxeURL(), " \t\r\n") {
			s.event(ctx, m, fmt.Sprintf("no script for %s (%s): netboot.ipxe.url %q is not an http(s) URL", m.mac, found, n.ipxeURL()))
			http.Error(w, "hardware "+m.hw.Metadata.Name+": netboot.ipxe.url is not an http(s) URL", http.StatusInternalServerError)
			return
		}
		s.event(ctx, m, fmt.Sprintf("served a chain to netboot.ipxe.url %s to %s (%s): %s", u, m.mac, found, why))
		writeScript(w, "#!ipxe\nchain --autofree "+u.String()+"\n")
	case n.ipxeContents() != "":
		s.event(ctx, m, fmt.Sprintf("served netboot.ipxe.contents (%d bytes) to %s (%s): %s", len(n.ipxeContents()), m.mac, found, why))
		writeScript(w, n.ipxeContents())
	default:
		script, from, err := s.autoScript(r, m)
		if err != nil {
			s.event(ctx, m, fmt.Sprintf("no script for %s (%s): %v", m.mac, found, err))
			http.Error(w, "hardware "+m.hw.Metadata.Name+": "+err.Error(), http.StatusInternalServerError)
			return
		}
		s.event(ctx, m, fmt.Sprintf("served auto.ipxe to %s (%s): the in-memory OS from %s, %s", m.mac, found, from, why))
		writeScript(w, script)
	}
}

func writeScript(w http.ResponseWriter, script string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(script))
}

// autoScript renders the default script: the in-memory OS with the kernel
// line Smee writes (so HookOS boots from it unchanged) and tink_server=
// for tink-worker. It returns where the kernel comes from.
func (s *Server) autoScript(r *http.Request, m *machine) (string, string, error) {
	n := netboot{m.iface.Netboot}
	arch := "x86_64"
	vlan := ""
	if d := m.iface.DHCP; d != nil {
		if d.Arch != "" {
			arch = d.Arch
		}
		vlan = d.VLANID
	}
	download := s.baseURL(r) + "/boot"
	kernel, initrd := "vmlinuz-${arch}", "initramfs-${arch}"
	if o := n.osie(); o != nil {
		if o.BaseURL != "" {
			download = strings.TrimRight(o.BaseURL, "/")
		}
		if o.Kernel != "" {
			kernel = o.Kernel
		}
		if o.Initrd != "" {
			initrd = o.Initrd
		}
	}
	workerID := m.mac
	if a := m.hw.Spec.AgentID; a != "" {
		workerID = a
	}
	facility := ""
	if md := m.hw.Spec.Metadata; md != nil && md.Facility != nil {
		facility = md.Facility.FacilityCode
	}
	host := hostOf(r)
	syslog := s.cfg.SyslogHost
	if syslog == "" {
		syslog = host
	}
	apiURL := s.cfg.APIURL
	if apiURL == "" {
		scheme := "http"
		if s.cfg.TLS {
			scheme = "https"
		}
		apiURL = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(s.cfg.APIPort))
	}
	au, err := url.Parse(apiURL)
	if err != nil || au.Host == "" {
		return "", "", fmt.Errorf("API URL %q for tink_server= is not a URL", apiURL)
	}
	authority := au.Host
	if au.Port() == "" {
		port := "80"
		if au.Scheme == "https" {
			port = "443"
		}
		authority = net.JoinHostPort(au.Hostname(), port)
	}

	var args []string
	if vlan != "" {
		args = append(args, "vlan_id="+vlan)
	}
	args = append(args,
		"facility="+facility,
		"syslog_host="+syslog,
		"grpc_authority="+authority,
		"tinkerbell_tls="+strconv.FormatBool(s.cfg.TLS),
		"tinkerbell_insecure_tls="+strconv.FormatBool(s.cfg.InsecureTLS),
		"worker_id="+workerID,
		"hw_addr="+m.mac,
		"modules=loop,squashfs,sd-mod,usb-storage", "intel_iommu=on", "iommu=pt",
		"initrd=${initrd}",
		"console=tty0", "console=ttyS1,115200",
		"tink_server="+apiURL)
	args = append(args, s.cfg.KernelArgs...)
	if o := n.osie(); o != nil {
		args = append(args, o.KernelParams...)
	}
	for _, a := range args {
		if err := checkArg(a); err != nil {
			return "", "", fmt.Errorf("kernel argument %q: %v", a, err)
		}
	}
	for what, v := range map[string]string{"download URL": download, "kernel": kernel, "initrd": initrd, "arch": arch} {
		if err := checkArg(v); err != nil {
			return "", "", fmt.Errorf("%s %q: %v", what, v, err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "#!ipxe\necho tinkops: booting the in-memory OS for %s\n", m.mac)
	fmt.Fprintf(&b, "set arch %s\nset download-url %s\nset kernel %s\nset initrd %s\n", arch, download, kernel, initrd)
	fmt.Fprintf(&b, "set retries:int32 %d\nset retry_delay:int32 %d\n", scriptRetries, scriptRetryDelay)
	// Each step is tried retries+1 times, as Smee's script does: a boot
	// server that restarts must not leave a fleet stuck at the firmware.
	step := func(label, cmd, next, fail string) {
		if next != "" {
			cmd += " && goto " + next
		}
		fmt.Fprintf(&b, "\nset idx:int32 0\n:%s\n%s || iseq ${idx} ${retries} && goto %s || inc idx && echo retry in ${retry_delay} seconds ; sleep ${retry_delay} ; goto %s\n",
			label, cmd, fail, label)
	}
	step("retry_kernel", "kernel ${download-url}/${kernel} "+strings.Join(args, " "), "download_initrd", "kernel_error")
	b.WriteString("\n:download_initrd")
	step("retry_initrd", "initrd ${download-url}/${initrd}", "boot", "initrd_error")
	b.WriteString("\n:boot")
	step("retry_boot", "boot", "", "boot_error") // boot returns only when it failed
	for _, e := range []struct{ label, what string }{{"kernel_error", "load the kernel"}, {"initrd_error", "load the initrd"}, {"boot_error", "boot"}} {
		fmt.Fprintf(&b, "\n:%s\necho tinkops: failed to %s\nimgfree\nexit\n", e.label, e.what)
	}
	return b.String(), download, nil
}

// checkArg refuses a value that would break the script's line: iPXE
// commands are one line, and a space or newline in a declared value would
// change the kernel line or add a command.
func checkArg(v string) error {
	for _, c := range v {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("contains a space or control character")
		}
	}
	return nil
}

// netboot reads an interface's netboot block; absent parts read empty.
type netboot struct{ nb *schema.Netboot }

func (n netboot) ipxeURL() string {
	if n.nb == nil || n.nb.IPXE == nil {
		return ""
	}
	return n.nb.IPXE.URL
}

func (n netboot) ipxeContents() string {
	if n.nb == nil || n.nb.IPXE == nil {
		return ""
	}
	return n.nb.IPXE.Contents
}

func (n netboot) osie() *schema.OSIE {
	if n.nb == nil {
		return nil
	}
	return n.nb.OSIE
}
