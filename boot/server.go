// Package boot is tinkops's machine-facing service, Smee's and Hegel's
// HTTP side in one listener: the iPXE script of a machine (found by the MAC
// in the URL or by its source address), the boot files of --boot-dir, and
// EC2-style and Hegel-style metadata found by source address.
//
// Every route is unauthenticated by nature (firmware has no token), so each
// serves only what the machine asking needs: never a secret, never another
// machine's data. Every script served is an event of the hardware it was
// served for, saying which script and why.
package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Config is what the boot service needs. Only Store is required.
type Config struct {
	Store state.Store
	Log   *slog.Logger

	// BootDir is served under /boot/ (kernels and initrds); empty serves
	// nothing there.
	BootDir string
	// TrustedProxies are the peers whose X-Forwarded-For header names the
	// machine; from any other peer the header is ignored.
	TrustedProxies []netip.Prefix

	// PublicURL is this service's URL as machines reach it (the default
	// script's boot files and the chain script point there); empty takes
	// the Host the machine asked for, which it reached.
	PublicURL string
	// APIURL is tink-server's API as machines reach it: tink_server= on the
	// kernel line, and its host:port is grpc_authority=. Empty takes the
	// host the machine asked for with APIPort.
	APIURL  string
	APIPort int
	// TLS says the API serves TLS (tinkerbell_tls=); InsecureTLS that
	// agents should not verify its certificate (tinkerbell_insecure_tls=).
	TLS         bool
	InsecureTLS bool
	// SyslogHost is syslog_host= (empty: the host the machine asked for).
	SyslogHost string
	// KernelArgs are appended to every default kernel line (for example
	// tink_worker_image=...), before the interface's osie.kernelParams.
	KernelArgs []string

	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server serves the machine-facing routes. Its zero value is not usable;
// build it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	mu  sync.Mutex
	idx *index
}

// indexMaxAge is how old the MAC and IP index may get before a request
// rebuilds it: machines are found without reading the fleet on every
// request, and a change in Git is seen within a second.
const indexMaxAge = time.Second

// index maps MACs and IPs to hardware, and hardware to the workflows that
// run on it.
type index struct {
	read      time.Time
	byMAC     map[string]state.ObjectKey
	byIP      map[netip.Addr]state.ObjectKey
	workflows map[state.ObjectKey][]state.ObjectKey
}

// New returns a Server. It does no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("boot: Store is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BootDir != "" {
		if fi, err := os.Stat(cfg.BootDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--boot-dir %s is not a directory", cfg.BootDir)
		}
	}
	for _, a := range cfg.KernelArgs {
		if err := checkArg(a); err != nil {
			return nil, fmt.Errorf("kernel argument %q: %v", a, err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "boot")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ipxe/chain.ipxe", s.handleChain)
	mux.HandleFunc("GET /ipxe/script/auto.ipxe", s.handleScript)
	mux.HandleFunc("GET /ipxe/script/{mac}/auto.ipxe", s.handleScript)
	mux.HandleFunc("GET /boot/{file...}", s.handleFile)
	s.metadataRoutes(mux)
	s.handler = mux
	return s, nil
}

// ServeHTTP refuses paths with a ".." segment before routing: the mux
// would redirect them to the cleaned path, and a machine asking for one is
// misconfigured (or probing), which deserves a clear 400.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, seg := range strings.Split(r.URL.Path, "/") {
		if seg == ".." {
			http.Error(w, "path must not contain ..", http.StatusBadRequest)
			return
		}
	}
	s.handler.ServeHTTP(w, r)
}

// clientIP is the machine's address: the peer's, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For address that is not one.
func (s *Server) clientIP(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q: %v", r.RemoteAddr, err)
	}
	ip := ap.Addr().Unmap()
	if !s.trusted(ip) {
		return ip, nil
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("X-Forwarded-For from %s: %q is not an IP address", ip, strings.TrimSpace(hops[i]))
		}
		hop = hop.Unmap()
		if !s.trusted(hop) {
			return hop, nil
		}
		ip = hop
	}
	return ip, nil
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of IP addresses and
// CIDR prefixes (--trusted-proxies).
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// machine is a hardware found for a request, with the interface it was
// found by.
type machine struct {
	hw    *schema.Hardware
	iface schema.Interface
	mac   string
}

// errUnknown means no hardware has that MAC or IP: a 404.
var errUnknown = errors.New("no hardware")

// byMAC finds the hardware with an interface of MAC mac (lowercase, colons).
func (s *Server) byMAC(ctx context.Context, mac string) (*machine, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	key, ok := idx.byMAC[mac]
	if !ok {
		return nil, errUnknown
	}
	return s.read(ctx, key, func(i schema.Interface) bool { return i.DHCP != nil && i.DHCP.MAC == mac })
}

// byIP finds the hardware with an interface of address ip.
func (s *Server) byIP(ctx context.Context, ip netip.Addr) (*machine, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	key, ok := idx.byIP[ip]
	if !ok {
		return nil, errUnknown
	}
	return s.read(ctx, key, func(i schema.Interface) bool { return ifaceIP(i) == ip })
}

// read reads the hardware afresh (the index may be a second old) and
// checks that the interface is still there.
func (s *Server) read(ctx context.Context, key state.ObjectKey, match func(schema.Interface) bool) (*machine, error) {
	o, err := s.cfg.Store.GetObject(ctx, key)
	if state.ErrorCode(err) == state.ENOTFOUND {
		return nil, errUnknown
	}
	if err != nil {
		return nil, err
	}
	obj, err := reconciler.FromState(o)
	if err != nil {
		return nil, err
	}
	hw := obj.(*schema.Hardware)
	for _, i := range hw.Spec.Interfaces {
		if match(i) {
			m := &machine{hw: hw, iface: i}
			if i.DHCP != nil {
				m.mac = i.DHCP.MAC
			}
			return m, nil
		}
	}
	return nil, errUnknown
}

// ifaceIP is the interface's declared address, or the zero Addr.
func ifaceIP(i schema.Interface) netip.Addr {
	if i.DHCP == nil || i.DHCP.IP == nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(i.DHCP.IP.Address)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// index returns the MAC and IP index, rebuilt when older than indexMaxAge.
// One request rebuilds it while the others wait: a fleet booting at once
// reads the store once a second, not once per machine.
func (s *Server) index(ctx context.Context) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil && s.cfg.Now().Sub(s.idx.read) < indexMaxAge {
		return s.idx, nil
	}
	idx := &index{read: s.cfg.Now(), byMAC: map[string]state.ObjectKey{}, byIP: map[netip.Addr]state.ObjectKey{},
		workflows: map[state.ObjectKey][]state.ObjectKey{}}
	hws, err := state.AllObjects(ctx, s.cfg.Store, state.ObjectQuery{Kind: state.KindHardware})
	if err != nil {
		return nil, err
	}
	for _, o := range hws {
		obj, err := reconciler.FromState(o)
		if err != nil {
			s.log.Warn("hardware not readable; machines of it cannot netboot", "hardware", o.Key().String(), "err", err)
			continue
		}
		for _, i := range obj.(*schema.Hardware).Spec.Interfaces {
			if i.DHCP != nil && i.DHCP.MAC != "" {
				idx.byMAC[i.DHCP.MAC] = o.Key()
			}
			if a := ifaceIP(i); a.IsValid() {
				idx.byIP[a] = o.Key()
			}
		}
	}
	wfs, err := state.AllObjects(ctx, s.cfg.Store, state.ObjectQuery{Kind: state.KindWorkflow})
	if err != nil {
		return nil, err
	}
	for _, wf := range wfs {
		hw := workflowHardware(wf)
		idx.workflows[hw] = append(idx.workflows[hw], wf.Key())
	}
	s.idx = idx
	return idx, nil
}

// workflowHardware is the hardware a stored workflow runs on.
func workflowHardware(wf *state.Object) state.ObjectKey {
	obj, err := reconciler.FromState(wf)
	if err != nil {
		return state.ObjectKey{}
	}
	return state.ObjectKey{Kind: state.KindHardware, Namespace: wf.Namespace, Name: obj.(*schema.Workflow).Spec.HardwareRef}
}

// allowPXE is the netboot permission in effect for the machine's
// interface, and why: the value the newest toggling run set (the same rule
// as hardware status in the API, reconciler.NetbootRun), else the declared
// interfaces[].netboot.allowPXE.
func (s *Server) allowPXE(ctx context.Context, m *machine) (bool, string, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return false, "", err
	}
	key := state.ObjectKey{Kind: state.KindHardware, Namespace: m.hw.Metadata.Namespace, Name: m.hw.Metadata.Name}
	var wfs []*state.Object
	for _, wk := range idx.workflows[key] {
		wf, err := s.cfg.Store.GetObject(ctx, wk) // afresh: its lastRun moves
		if state.ErrorCode(err) == state.ENOTFOUND {
			continue
		}
		if err != nil {
			return false, "", err
		}
		wfs = append(wfs, wf)
	}
	runs, err := reconciler.LatestRuns(ctx, s.cfg.Store, wfs, func(hw state.ObjectKey) bool { return hw == key })
	if err != nil {
		return false, "", err
	}
	if p := reconciler.NetbootRun(runs[key]); p != nil {
		return *p.AllowPXE, fmt.Sprintf("allowPXE %t, set by run %d of workflow %s (toggleAllowNetboot, run %s)",
			*p.AllowPXE, p.Number, p.Workflow, p.State), nil
	}
	if n := m.iface.Netboot; n != nil && n.AllowPXE != nil {
		return *n.AllowPXE, fmt.Sprintf("allowPXE %t, declared on the interface", *n.AllowPXE), nil
	}
	return false, "allowPXE not declared on the interface (false)", nil
}

// event records what a machine was served. A failure to record is logged
// and does not keep the machine from booting.
func (s *Server) event(ctx context.Context, m *machine, msg string) {
	ev := state.Event{Type: state.EventNetboot, Kind: state.KindHardware, Namespace: m.hw.Metadata.Namespace, Name: m.hw.Metadata.Name, Message: msg}
	if _, err := s.cfg.Store.Apply(ctx, &state.Batch{Actor: actor, Events: []state.Event{ev}}); err != nil {
		s.log.Error("netboot event not recorded", "hardware", m.hw.Metadata.Name, "event", msg, "err", err)
	}
	s.log.Info("netboot", "hardware", m.hw.Metadata.Name, "mac", m.mac, "msg", msg)
}

// actor is who the boot service's events are from.
const actor state.Actor = "boot"

// hostOf is the host part of a request's Host header.
func hostOf(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}

// baseURL is this service's URL as the machine reached it.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	return "http://" + r.Host
}

// lookupStatus maps a lookup error to a status and a message a machine
// (or the person at its console) can act on.
func lookupStatus(err error, what string) (int, string) {
	if errors.Is(err, errUnknown) {
		return http.StatusNotFound, "no hardware has " + what
	}
	return http.StatusInternalServerError, "internal error; see the server's log"
}
