package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tinkops/tinkops/boot"
)

// BootConfig configures the machine-facing listener (package boot): iPXE
// scripts, boot files and metadata. It is off unless Listen is set.
type BootConfig struct {
	// Listen is the address of the machine-facing listener; empty: off.
	Listen string
	// Dir is served under /boot/ (kernels and initrds).
	Dir string
	// TrustedProxies is a comma-separated list of addresses and prefixes
	// whose X-Forwarded-For is believed.
	TrustedProxies string
	// KernelArgs are added to every default kernel line, space-separated.
	KernelArgs string
	// APIURL is the API's URL as machines reach it (tink_server=,
	// grpc_authority=); empty: the host the machine asked, the API's port.
	APIURL string
}

// flags registers the boot listener's flags.
func (b *BootConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&b.Listen, "boot-listen", b.Listen, "address of the machine-facing listener (iPXE scripts, --boot-dir files, metadata; unauthenticated, as machines have no token); empty: off")
	fs.StringVar(&b.Dir, "boot-dir", b.Dir, "directory served under /boot/ on --boot-listen: kernels and initrds (vmlinuz-x86_64, initramfs-x86_64)")
	fs.StringVar(&b.TrustedProxies, "trusted-proxies", b.TrustedProxies, "comma-separated addresses or CIDR prefixes of proxies in front of --boot-listen whose X-Forwarded-For names the machine")
	fs.StringVar(&b.KernelArgs, "boot-kernel-args", b.KernelArgs, "space-separated arguments added to every default kernel line (for example tink_worker_image=... console=ttyS0)")
	fs.StringVar(&b.APIURL, "boot-api-url", b.APIURL, "the API's URL as machines reach it, for tink_server= and grpc_authority= (default: the host a machine reached --boot-listen at, with the API's port)")
}

// check validates the boot settings after parsing.
func (b *BootConfig) check() error {
	if b.Listen == "" {
		if b.Dir != "" || b.TrustedProxies != "" || b.KernelArgs != "" || b.APIURL != "" {
			return errors.New("--boot-dir, --trusted-proxies, --boot-kernel-args and --boot-api-url need --boot-listen")
		}
		return nil
	}
	if _, err := boot.ParseTrustedProxies(b.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if b.APIURL != "" {
		if u, err := url.Parse(b.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--boot-api-url %q: want an http:// or https:// URL", b.APIURL)
		}
	}
	return nil
}

// bootListener is the running machine-facing listener.
type bootListener struct {
	srv *http.Server
	ln  net.Listener
}

// openBoot starts the machine-facing listener when --boot-listen is set.
// It serves plain HTTP: firmware iPXE seldom trusts a site's CA.
func (m *Main) openBoot() error {
	c := m.Config
	if c.Boot.Listen == "" {
		return nil
	}
	proxies, err := boot.ParseTrustedProxies(c.Boot.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	apiPort := 0
	if ap, err := netip.ParseAddrPort(m.ln.Addr().String()); err == nil {
		apiPort = int(ap.Port())
	}
	srv, err := boot.New(boot.Config{Store: m.Store, Log: m.log, BootDir: c.Boot.Dir, TrustedProxies: proxies,
		APIURL: c.Boot.APIURL, APIPort: apiPort, TLS: c.TLSCert != "", KernelArgs: strings.Fields(c.Boot.KernelArgs)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Boot.Listen)
	if err != nil {
		return fmt.Errorf("--boot-listen %s: %w", c.Boot.Listen, err)
	}
	m.boot = bootListener{srv: &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}, ln: ln}
	m.goRun("boot listener", func() error {
		if err := m.boot.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	fmt.Fprintf(m.stdout, "tink-server serving machines on http://%s (iPXE scripts, boot files from %q, metadata)\n", ln.Addr(), c.Boot.Dir)
	return nil
}

// BootAddr is the machine-facing listener's address; empty when off.
func (m *Main) BootAddr() string {
	if m.boot.ln == nil {
		return ""
	}
	return m.boot.ln.Addr().String()
}

// closeBoot stops the machine-facing listener, letting requests in flight
// (a kernel download) finish for a while.
func (m *Main) closeBoot() error {
	if m.boot.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.boot.srv.Shutdown(ctx); err != nil {
		return m.boot.srv.Close()
	}
	return nil
}
