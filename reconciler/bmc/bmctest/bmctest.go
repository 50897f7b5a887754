// Package bmctest runs real BMCs for tests: an IPMI BMC (OpenIPMI's
// ipmi_sim, driven over the network by ipmitool, exactly as bmclib drives
// a server's BMC) and a Redfish BMC (an HTTPS server speaking the part of
// DMTF Redfish that bmclib's gofish provider uses). Each records every
// command it was given, so a test can assert what a machine was told and in
// which order.
//
// Tests of other packages use it too (the workflow engine's boot actions,
// the API's power overrides), with WriteSecret for the credentials.
package bmctest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinkops/tinkops/schema"
)

// Option configures a simulated BMC.
type Option func(*options)

type options struct {
	power    bool
	user     string
	password string
	host     string
	chassis  string
}

func newOptions(opts []Option) options {
	o := options{user: "admin", password: RandomPassword()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithHost makes a Redfish BMC listen on another loopback address than
// 127.0.0.1 (127.0.0.2: an address no secret is bound to).
func WithHost(host string) Option { return func(o *options) { o.host = host } }

// WithPower sets the machine's initial power state (default off).
func WithPower(on bool) Option { return func(o *options) { o.power = on } }

// WithUser sets the BMC's username (default "admin").
func WithUser(user string) Option { return func(o *options) { o.user = user } }

// WithPassword sets the BMC's password (default random, see
// RandomPassword). IPMI limits it to 20 characters, without spaces or
// quotes here.
func WithPassword(password string) Option { return func(o *options) { o.password = password } }

// WithChassisControl makes program ipmi_sim's chassis_control, in place
// of the simulator's own script keeping power and boot in files: a lab
// puts a real (virtual) machine behind the BMC this way. ipmi_sim runs it
// through the shell with the command appended (see chassisScript); Calls
// and Power then know nothing of what it was told.
func WithChassisControl(program string) Option { return func(o *options) { o.chassis = program } }

// RandomPassword returns a password unlikely to occur in any text by
// chance, so "the password appears nowhere" assertions mean something.
func RandomPassword() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	return "pw" + hex.EncodeToString(b)
}

// WriteSecret writes a secret as the server's secrets directory holds it:
// dir/<namespace>/<name>/username and password (dir/<name>/... without a
// namespace), each with a trailing newline as `echo` would write it, and
// allowed-hosts listing allowedHosts when any are given (without it, the
// secret is sent to no BMC).
func WriteSecret(t testing.TB, dir string, ref schema.SecretRef, username, password string, allowedHosts ...string) {
	t.Helper()
	folder := filepath.Join(dir, ref.Namespace, ref.Name)
	if err := os.MkdirAll(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"username": username, "password": password}
	if len(allowedHosts) > 0 {
		files["allowed-hosts"] = strings.Join(allowedHosts, "\n")
	}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(folder, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
