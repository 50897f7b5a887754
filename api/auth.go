package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/state"
)

// Role says what a token may do. Roles are not nested sets, except that admin
// may do everything: a worker may only use the worker endpoints, for its own
// hardware.
type Role string

// Roles.
const (
	// RoleAdmin may do everything, including deletions and suspending
	// reconciliation.
	RoleAdmin Role = "admin"
	// RoleOperator may read, create and update objects, retry and cancel
	// runs, control power and ask for a sync.
	RoleOperator Role = "operator"
	// RoleViewer may read.
	RoleViewer Role = "viewer"
	// RoleWorker may use only the worker endpoints, and only for the
	// hardware its token is bound to.
	RoleWorker Role = "worker"
	// RolePublic marks routes that need no token (health checks).
	RolePublic Role = ""
)

// Valid reports whether r is a role a token can have.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleOperator, RoleViewer, RoleWorker:
		return true
	}
	return false
}

// Permits reports whether a token with role r may use a route that needs
// role need (ignoring hardware binding; see Principal.Permits).
func (r Role) Permits(need Role) bool {
	switch {
	case need == RolePublic, r == RoleAdmin:
		return true
	case r == RoleWorker:
		return need == RoleWorker
	case r == RoleOperator:
		return need == RoleOperator || need == RoleViewer
	case r == RoleViewer:
		return need == RoleViewer
	}
	return false
}

// Principal is who made a request: the token's name and role, and for a
// worker token the hardware it speaks for.
type Principal struct {
	Name string
	Role Role
	// Hardware is the one hardware object a worker token speaks for:
	// namespace/name, or the name alone in the default namespace (the
	// form Workers.Resolve returns, so the two compare as strings).
	Hardware string
}

// anonymous is the principal of every request when the server runs without
// an auth file (loopback only, or --insecure).
func anonymous() *Principal { return &Principal{Name: "anonymous", Role: RoleAdmin} }

// Actor is how the principal appears in events: api:<name>, or
// worker:<hardware> (namespace/name outside the default namespace) for a
// worker token.
func (p *Principal) Actor() state.Actor {
	if p.Role == RoleWorker {
		return state.Worker(p.Hardware)
	}
	return state.APIUser(p.Name)
}

// Permits reports whether the principal may use a route that needs role need
// on behalf of hardware (empty when the route is not about one machine; else
// namespace/name, or the name alone in the default namespace). A worker
// token may act only for the one hardware object it is bound to: the same
// name in another namespace is another machine.
func (p *Principal) Permits(need Role, hardware string) bool {
	if !p.Role.Permits(need) {
		return false
	}
	if need == RoleWorker && p.Role == RoleWorker && hardware != p.Hardware {
		return false
	}
	return true
}

// Token is one entry of the tokens file. The file holds only SHA-256 hashes
// of the tokens, so reading it gives nobody a way in.
type Token struct {
	// Name identifies the token in events and logs.
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// Hardware binds a worker token to one hardware object: its name in
	// the default namespace, or namespace/name (required for workers,
	// refused for other roles).
	Hardware string `yaml:"hardware,omitempty"`
	// SHA256 is the hex SHA-256 of the token (printf %s "$TOKEN" | sha256sum).
	SHA256 string `yaml:"sha256"`
}

// Auth checks bearer tokens against a fixed set of hashes. It is safe for
// concurrent use.
type Auth struct {
	entries []authEntry
}

type authEntry struct {
	p    Principal
	hash [sha256.Size]byte
}

// HashToken returns the hex SHA-256 of a token, as the tokens file holds it.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewAuth checks tokens and returns an Auth for them. Errors are EINVALID and
// name the entry at fault.
func NewAuth(tokens []Token) (*Auth, error) {
	if len(tokens) == 0 {
		return nil, state.Errorf(state.EINVALID, "no tokens: give at least one, or run without an auth file on loopback")
	}
	a := &Auth{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	for i, t := range tokens {
		where := fmt.Sprintf("token %d", i+1)
		if t.Name != "" {
			where += fmt.Sprintf(" (%s)", t.Name)
		}
		if t.Name == "" {
			return nil, state.Errorf(state.EINVALID, "%s: name is empty", where)
		}
		if strings.ContainsAny(t.Name, " \t\r\n/:") {
			return nil, state.Errorf(state.EINVALID, "%s: name must not contain spaces, '/' or ':'", where)
		}
		if j, dup := names[t.Name]; dup {
			return nil, state.Errorf(state.EINVALID, "%s: name is already used by token %d", where, j+1)
		}
		names[t.Name] = i
		if !t.Role.Valid() {
			return nil, state.Errorf(state.EINVALID, "%s: role %q is not one of admin, operator, viewer, worker", where, t.Role)
		}
		switch {
		case t.Role == RoleWorker && t.Hardware == "":
			return nil, state.Errorf(state.EINVALID, "%s: a worker token needs the hardware it runs on (hardware: <name>)", where)
		case t.Role != RoleWorker && t.Hardware != "":
			return nil, state.Errorf(state.EINVALID, "%s: only worker tokens are bound to hardware", where)
		case t.Role == RoleWorker:
			if err := checkHardwareBinding(t.Hardware); err != nil {
				return nil, state.Errorf(state.EINVALID, "%s: hardware %q: %s", where, t.Hardware, state.ErrorMessage(err))
			}
		}
		raw, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(t.SHA256)))
		if err != nil || len(raw) != sha256.Size {
			return nil, state.Errorf(state.EINVALID, "%s: sha256 must be 64 hex digits (printf %%s \"$TOKEN\" | sha256sum)", where)
		}
		var h [sha256.Size]byte
		copy(h[:], raw)
		if j, dup := hashes[h]; dup {
			return nil, state.Errorf(state.EINVALID, "%s: has the same token as token %d", where, j+1)
		}
		hashes[h] = i
		a.entries = append(a.entries, authEntry{p: Principal{Name: t.Name, Role: t.Role, Hardware: t.Hardware}, hash: h})
	}
	return a, nil
}

// checkHardwareBinding checks a worker token's hardware: name, or
// namespace/name, each a valid object name.
func checkHardwareBinding(hw string) error {
	ns, name, namespaced := strings.Cut(hw, "/")
	if !namespaced {
		ns, name = "", hw
	}
	if namespaced && ns == "" {
		return state.Errorf(state.EINVALID, "want <name> or <namespace>/<name>")
	}
	return state.ObjectKey{Kind: state.KindHardware, Namespace: ns, Name: name}.Validate()
}

// maxAuthFile bounds the tokens file.
const maxAuthFile = 1 << 20

// LoadAuthFile reads a tokens file: a YAML list of {name, role, sha256} (and
// hardware for worker tokens). Errors are EINVALID and name the file.
func LoadAuthFile(path string) (*Auth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, state.Errorf(state.EINVALID, "auth file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
	if err != nil {
		return nil, state.Errorf(state.EINVALID, "auth file %s: %v", path, err)
	}
	if len(b) > maxAuthFile {
		return nil, state.Errorf(state.EINVALID, "auth file %s is larger than 1 MiB", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var tokens []Token
	if err := dec.Decode(&tokens); err != nil && err != io.EOF {
		return nil, state.Errorf(state.EINVALID, "auth file %s: %s (want a list of {name, role, sha256})", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	a, err := NewAuth(tokens)
	if err != nil {
		return nil, state.Errorf(state.EINVALID, "auth file %s: %s", path, state.ErrorMessage(err))
	}
	return a, nil
}

// Authenticate returns the principal of token. Every entry is compared, in
// constant time, whether or not an earlier one matched, so the time taken
// says nothing about the token.
func (a *Auth) Authenticate(token string) (*Principal, bool) {
	h := sha256.Sum256([]byte(token))
	var found *Principal
	for i := range a.entries {
		if subtle.ConstantTimeCompare(h[:], a.entries[i].hash[:]) == 1 {
			found = &a.entries[i].p
		}
	}
	if found == nil {
		return nil, false
	}
	p := *found
	return &p, true
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// authenticate returns the request's principal, or an EUNAUTHORIZED error
// that never repeats what the caller sent.
func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	if s.auth == nil {
		return anonymous(), nil
	}
	token, ok := bearerToken(r)
	if !ok {
		return nil, Errorf(state.EUNAUTHORIZED, "this server needs an API token: send Authorization: Bearer <token> (tink --token or TINK_TOKEN)")
	}
	p, ok := s.auth.Authenticate(token)
	if !ok {
		return nil, Errorf(state.EUNAUTHORIZED, "the API token is not valid")
	}
	return p, nil
}

// browserGuard refuses what a web page could make a browser send: a
// state-changing cross-origin request (CSRF, which needs no token when the
// server runs without an auth file), and, without an auth file, a request
// that reached a loopback address under another host name (DNS rebinding,
// which would let a page read and steer a local server).
func (s *Server) browserGuard(r *http.Request) error {
	if err := s.csrf.Check(r); err != nil {
		return Errorf(EFORBIDDEN, "cross-origin browser requests that change state are refused")
	}
	if s.auth != nil {
		return nil
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return nil
	}
	ta, ok := local.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	// An IP address cannot be rebound: a request addressed to one reached
	// this loopback socket through a forward someone set up (a virtual
	// machine's user network, as `make lab` has: 10.0.2.2 is the host's
	// 127.0.0.1), not through a page's DNS. The unspecified address is
	// refused, as browsers send pages' requests for 0.0.0.0 to this host.
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && !ip.IsUnspecified() {
		return nil
	}
	if !isLoopback(host) {
		return Errorf(EFORBIDDEN, "this server has no API tokens and answers only requests addressed to localhost or an IP address, not %q", r.Host)
	}
	return nil
}

// CheckListen applies the rule that keeps a server without tokens off the
// network: with no auth (nil) it may listen only on a loopback address,
// unless insecure. addr is host:port as for net.Listen. The error says what
// to do.
func CheckListen(addr string, auth *Auth, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return state.Errorf(state.EINVALID, "listen address %q: %v", addr, err)
	}
	if auth != nil || insecure || isLoopback(host) {
		return nil
	}
	where := host
	if host == "" || host == "0.0.0.0" || host == "::" {
		where = "every network interface"
	}
	return state.Errorf(state.EINVALID,
		"refusing to listen on %s without API tokens: the API would be open on %s, and anyone who can reach it could provision or power-cycle the fleet. "+
			"Give --auth-file with API tokens, listen on 127.0.0.1, or pass --insecure if the network is trusted",
		addr, where)
}

// isLoopback reports whether host surely names this machine only. Host
// names other than localhost are not resolved (that would be I/O and could
// change later), so they count as reachable from outside.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
