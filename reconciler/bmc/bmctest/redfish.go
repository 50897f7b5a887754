package bmctest

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tinkops/tinkops/schema"
)

// Redfish paths the simulator serves: one system, one manager, one CD.
const (
	rfRoot     = "/redfish/v1/"
	rfSessions = "/redfish/v1/SessionService/Sessions"
	rfSystems  = "/redfish/v1/Systems"
	rfSystem   = "/redfish/v1/Systems/1"
	rfReset    = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
	rfManagers = "/redfish/v1/Managers"
	rfManager  = "/redfish/v1/Managers/1"
	rfMedia    = "/redfish/v1/Managers/1/VirtualMedia"
	rfCD       = "/redfish/v1/Managers/1/VirtualMedia/CD1"
	rfInsert   = "/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia"
	rfEject    = "/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia"
)

// Values the simulated system allows, as a Redfish service lists them.
var (
	rfResetTypes   = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle", "Nmi"}
	rfBootTargets  = []string{"None", "Pxe", "Cd", "Hdd", "BiosSetup", "Usb", "UefiHttp"}
	rfBootEnabled  = []string{"Disabled", "Once", "Continuous"}
	rfBootModes    = []string{"UEFI", "Legacy"}
	rfMediaTypes   = []string{"CD", "DVD"}
	rfCollectionOf = map[string]string{rfSystems: rfSystem, rfManagers: rfManager, rfMedia: rfCD}
)

// Redfish is a running Redfish BMC over HTTPS on 127.0.0.1:Port (or the
// address WithHost gives). It
// speaks what bmclib v2.3.5's gofish provider sends: the service root,
// session login and logout, the systems collection with one
// ComputerSystem (power state, boot override, the Reset action), and the
// managers collection with one Manager whose VirtualMedia has one CD
// (InsertMedia, EjectMedia). Requests need a session token or basic auth;
// a wrong password gets 401.
type Redfish struct {
	// Host and Port are where the BMC listens (HTTPS); URL is both as
	// https://host:port.
	Host string
	Port int
	URL  string
	// User and Password log in; the password is random unless
	// WithPassword set it.
	User     string
	Password string

	srv *httptest.Server

	mu       sync.Mutex
	power    string // "On" or "Off"
	boot     RedfishBoot
	image    string
	inserted bool
	sessions map[string]string // token -> session id
	nextID   int
	calls    []string
	// gotPassword is set once a request carried Password (in a login
	// body or basic auth), whether or not it was accepted.
	gotPassword bool
}

// RedfishBoot is the system's boot source override.
type RedfishBoot struct {
	Target  string // BootSourceOverrideTarget: None, Pxe, Cd, Hdd, BiosSetup, ...
	Enabled string // BootSourceOverrideEnabled: Disabled, Once, Continuous
	Mode    string // BootSourceOverrideMode: UEFI, Legacy
}

// StartRedfish starts a Redfish BMC; t.Cleanup stops it. Its certificate
// is httptest's, valid for 127.0.0.1: give clients CertPool (or CAFile).
func StartRedfish(t testing.TB, opts ...Option) *Redfish {
	t.Helper()
	o := newOptions(opts)
	r := &Redfish{
		User:     o.user,
		Password: o.password,
		power:    "Off",
		boot:     RedfishBoot{Target: "None", Enabled: "Disabled", Mode: "UEFI"},
		sessions: map[string]string{},
	}
	if o.power {
		r.power = "On"
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if o.host != "" {
		ln, err := net.Listen("tcp", net.JoinHostPort(o.host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		_ = r.srv.Listener.Close()
		r.srv.Listener = ln
	}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL
	host, port, err := net.SplitHostPort(r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r.Host = host
	r.Port, _ = strconv.Atoi(port)
	return r
}

// CertPool returns a pool holding the server's certificate, for clients
// that verify it.
func (r *Redfish) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	return pool
}

// CAFile writes the server's certificate as PEM and returns the file, for
// a --bmc-ca-file flag.
func (r *Redfish) CAFile(t testing.TB) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "bmc-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// BMC returns the inline bmc block of a Hardware managed by this BMC.
func (r *Redfish) BMC(credentialsRef string) *schema.BMC {
	return &schema.BMC{Address: r.Host, Port: r.Port, Protocol: "redfish", CredentialsRef: credentialsRef}
}

// ReceivedPassword reports whether any request so far carried the BMC's
// password: what an endpoint that is not the machine's BMC must never see.
func (r *Redfish) ReceivedPassword() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gotPassword
}

// Calls returns the requests so far, one line each: method, path, a
// summary of the body ("ResetType=ForceOff", "Boot=Pxe/Once/UEFI",
// "Image=<url>", "user=<name>" for a login, never the password), and
// " -> <status>" when the answer was not a success.
func (r *Redfish) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// ResetCalls forgets the requests so far.
func (r *Redfish) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// Power returns the system's PowerState: "On" or "Off".
func (r *Redfish) Power() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.power
}

// SetPower changes the power state behind the server's back.
func (r *Redfish) SetPower(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.power = map[bool]string{true: "On", false: "Off"}[on]
}

// Boot returns the boot source override.
func (r *Redfish) Boot() RedfishBoot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.boot
}

// Media returns the CD's image and whether it is inserted.
func (r *Redfish) Media() (image string, inserted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.image, r.inserted
}

// Sessions returns how many sessions are open: a client that logs out
// after every operation leaves none.
func (r *Redfish) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// serve handles one request under the lock: the simulator is one small
// state machine, and BMCs serialise too.
func (r *Redfish) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, pass, ok := req.BasicAuth(); ok && pass == r.Password || strings.Contains(string(body), r.Password) {
		r.gotPassword = true
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	summary := r.handle(rec, req, body)
	line := req.Method + " " + req.URL.Path
	if summary != "" {
		line += " " + summary
	}
	if rec.status >= 300 {
		line += " -> " + strconv.Itoa(rec.status)
	}
	r.calls = append(r.calls, line)
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records code and writes it.
func (rec *recorder) WriteHeader(code int) {
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

// handle routes a request and returns the summary of its body for Calls.
func (r *Redfish) handle(w http.ResponseWriter, req *http.Request, body []byte) string {
	path := strings.TrimSuffix(req.URL.Path, "/")
	if path+"/" == rfRoot && req.Method == http.MethodGet {
		// The service root is public: clients read it to find the
		// session service before they log in.
		writeJSON(w, http.StatusOK, r.serviceRoot())
		return ""
	}
	if path == rfSessions && req.Method == http.MethodPost {
		return r.login(w, body)
	}
	if !r.authorized(req) {
		rfError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
		return ""
	}
	switch {
	case req.Method == http.MethodDelete && strings.HasPrefix(path, rfSessions+"/"):
		id := strings.TrimPrefix(path, rfSessions+"/")
		for token, sid := range r.sessions {
			if sid == id {
				delete(r.sessions, token)
				w.WriteHeader(http.StatusNoContent)
				return ""
			}
		}
		rfError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No such session.")
	case req.Method == http.MethodGet && rfCollectionOf[path] != "":
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":           path,
			"Members":             []any{map[string]string{"@odata.id": rfCollectionOf[path]}},
			"Members@odata.count": 1,
		})
	case req.Method == http.MethodGet && path == rfSystem:
		writeJSON(w, http.StatusOK, r.system())
	case req.Method == http.MethodPatch && path == rfSystem:
		return r.patchSystem(w, body)
	case req.Method == http.MethodPost && path == rfReset:
		return r.reset(w, body)
	case req.Method == http.MethodGet && path == rfManager:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":    rfManager,
			"@odata.type":  "#Manager.v1_10_0.Manager",
			"Id":           "1",
			"Name":         "Manager",
			"ManagerType":  "BMC",
			"VirtualMedia": map[string]string{"@odata.id": rfMedia},
			"Links":        map[string]any{"ManagerForServers": []any{map[string]string{"@odata.id": rfSystem}}},
		})
	case req.Method == http.MethodGet && path == rfCD:
		writeJSON(w, http.StatusOK, r.cd())
	case req.Method == http.MethodPost && path == rfInsert:
		return r.insert(w, body)
	case req.Method == http.MethodPost && path == rfEject:
		if !r.inserted {
			rfError(w, http.StatusBadRequest, "Base.1.8.ActionNotSupported", "No media is inserted.")
			return ""
		}
		r.image, r.inserted = "", false
		w.WriteHeader(http.StatusNoContent)
	default:
		rfError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "The resource at the URI "+req.URL.Path+" was not found.")
	}
	return ""
}

// authorized accepts a session token or basic auth.
func (r *Redfish) authorized(req *http.Request) bool {
	if token := req.Header.Get("X-Auth-Token"); token != "" {
		_, ok := r.sessions[token]
		return ok
	}
	user, pass, ok := req.BasicAuth()
	return ok && r.credentialsOK(user, pass)
}

func (r *Redfish) credentialsOK(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(r.User))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(r.Password))
	return u&p == 1
}

// login creates a session: 201 with X-Auth-Token and Location.
func (r *Redfish) login(w http.ResponseWriter, body []byte) string {
	var in struct {
		UserName string
		Password string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rfError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body is not JSON.")
		return ""
	}
	summary := "user=" + in.UserName
	if !r.credentialsOK(in.UserName, in.Password) {
		rfError(w, http.StatusUnauthorized, "Base.1.8.InsufficientPrivilege", "Invalid username or password.")
		return summary
	}
	r.nextID++
	id := strconv.Itoa(r.nextID)
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	r.sessions[token] = id
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", rfSessions+"/"+id)
	writeJSON(w, http.StatusCreated, map[string]any{
		"@odata.id": rfSessions + "/" + id,
		"Id":        id,
		"Name":      "User Session",
		"UserName":  in.UserName,
	})
	return summary
}

// patchSystem sets the boot override: target, enabled and mode, each
// checked against the allowed values (a field left empty is unchanged).
func (r *Redfish) patchSystem(w http.ResponseWriter, body []byte) string {
	var in struct {
		Boot *struct {
			BootSourceOverrideTarget  string
			BootSourceOverrideEnabled string
			BootSourceOverrideMode    string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Boot == nil {
		rfError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "Only Boot can be patched here.")
		return ""
	}
	b := r.boot
	for _, f := range []struct {
		v       string
		allowed []string
		dst     *string
	}{
		{in.Boot.BootSourceOverrideTarget, rfBootTargets, &b.Target},
		{in.Boot.BootSourceOverrideEnabled, rfBootEnabled, &b.Enabled},
		{in.Boot.BootSourceOverrideMode, rfBootModes, &b.Mode},
	} {
		if f.v == "" {
			continue
		}
		if !slices.Contains(f.allowed, f.v) {
			rfError(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList", fmt.Sprintf("The value %s is not allowed.", f.v))
			return "Boot=" + f.v
		}
		*f.dst = f.v
	}
	r.boot = b
	w.WriteHeader(http.StatusNoContent)
	return fmt.Sprintf("Boot=%s/%s/%s", b.Target, b.Enabled, b.Mode)
}

// reset does a ComputerSystem.Reset. Restarting a system that is off is
// refused, as real BMCs do.
func (r *Redfish) reset(w http.ResponseWriter, body []byte) string {
	var in struct{ ResetType string }
	if err := json.Unmarshal(body, &in); err != nil {
		rfError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body is not JSON.")
		return ""
	}
	summary := "ResetType=" + in.ResetType
	switch in.ResetType {
	case "On", "PowerCycle":
		r.power = "On"
	case "ForceOff", "GracefulShutdown":
		r.power = "Off"
	case "ForceRestart", "GracefulRestart":
		if r.power == "Off" {
			rfError(w, http.StatusConflict, "Base.1.8.ActionNotSupported", "The action is not supported while the system is off.")
			return summary
		}
	case "Nmi":
	default:
		rfError(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueNotInList", "Unknown ResetType "+in.ResetType+".")
		return summary
	}
	w.WriteHeader(http.StatusNoContent)
	return summary
}

// insert attaches an image to the CD; a CD already holding one refuses,
// as real BMCs do (bmclib ejects first).
func (r *Redfish) insert(w http.ResponseWriter, body []byte) string {
	var in struct {
		Image    string
		Inserted *bool
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Image == "" {
		rfError(w, http.StatusBadRequest, "Base.1.8.ActionParameterMissing", "InsertMedia needs Image.")
		return ""
	}
	summary := "Image=" + in.Image
	if r.inserted {
		rfError(w, http.StatusConflict, "Base.1.8.ActionNotSupported", "Media is already inserted.")
		return summary
	}
	r.image, r.inserted = in.Image, true
	w.WriteHeader(http.StatusNoContent)
	return summary
}

func (r *Redfish) serviceRoot() map[string]any {
	return map[string]any{
		"@odata.id":      rfRoot,
		"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.11.0",
		"UUID":           "92384634-2938-2342-8820-489239905423",
		"Systems":        map[string]string{"@odata.id": rfSystems},
		"Managers":       map[string]string{"@odata.id": rfManagers},
		"SessionService": map[string]string{"@odata.id": "/redfish/v1/SessionService"},
		"Links":          map[string]any{"Sessions": map[string]string{"@odata.id": rfSessions}},
	}
}

func (r *Redfish) system() map[string]any {
	return map[string]any{
		"@odata.id":    rfSystem,
		"@odata.type":  "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":           "1",
		"Name":         "System",
		"SystemType":   "Physical",
		"Manufacturer": "tinkops",
		"Model":        "bmctest",
		"PowerState":   r.power,
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                         r.boot.Target,
			"BootSourceOverrideEnabled":                        r.boot.Enabled,
			"BootSourceOverrideMode":                           r.boot.Mode,
			"BootSourceOverrideTarget@Redfish.AllowableValues": rfBootTargets,
		},
		"Actions": map[string]any{
			"#ComputerSystem.Reset": map[string]any{
				"target":                            rfReset,
				"ResetType@Redfish.AllowableValues": rfResetTypes,
			},
		},
		"Links": map[string]any{"ManagedBy": []any{map[string]string{"@odata.id": rfManager}}},
	}
}

func (r *Redfish) cd() map[string]any {
	return map[string]any{
		"@odata.id":      rfCD,
		"@odata.type":    "#VirtualMedia.v1_3_0.VirtualMedia",
		"Id":             "CD1",
		"Name":           "Virtual CD",
		"MediaTypes":     rfMediaTypes,
		"Image":          r.image,
		"Inserted":       r.inserted,
		"WriteProtected": true,
		"ConnectedVia":   map[bool]string{true: "URI", false: "NotConnected"}[r.inserted],
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]string{"target": rfInsert},
			"#VirtualMedia.EjectMedia":  map[string]string{"target": rfEject},
		},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// rfError writes a Redfish error body.
func rfError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
