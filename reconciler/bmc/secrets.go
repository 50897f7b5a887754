package bmc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// redacted replaces a password wherever one would otherwise be shown.
const redacted = "********"

// maxSecretFile bounds what is read from a secret file: usernames and
// passwords are short, and a mount pointing at something huge is a mistake
// that must not cost memory.
const maxSecretFile = 64 << 10

// Credentials log in to a BMC. Its String, GoString, LogValue and
// MarshalJSON all redact the password, so that printing or logging a
// Credentials by mistake leaks nothing.
type Credentials struct {
	// Username is the BMC user; IPMI allows an empty one (anonymous).
	Username string
	// Password is the secret itself: never print it, pass it to bmclib.
	Password string
	// Secret says where the credentials were read from
	// (<secrets-dir>/<namespace>/<name>), for messages.
	Secret string
}

// String shows the username and the secret, never the password.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{Username:%q, Password:%s, Secret:%q}", c.Username, redacted, c.Secret)
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue makes slog print the username and the secret, never the password.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", redacted), slog.String("secret", c.Secret))
}

// MarshalJSON redacts the password: credentials are never part of an API
// answer, and if a bug puts them in one, the password stays out.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"username":%q,"password":%q}`, c.Username, redacted), nil
}

// AllowedHostsFile is the file of a secret's folder that binds the secret to
// the BMC addresses it may be sent to, one a line: an IP address, a CIDR
// prefix (10.0.5.0/24) or a host name, compared with the address of the
// bmc block (or the Machine's connection host) as written there: IP
// addresses as addresses, names case-insensitively and never resolved.
// Blank lines and lines starting with # are ignored.
//
// Whoever may write a Hardware (an operator through the API, anyone whose
// pull request is merged) chooses its BMC address and credentialsRef; only
// whoever writes the secrets directory chooses where a secret may go. A
// secret without the file is sent nowhere, so an existing secret stops
// working until it is bound (the error says how).
const AllowedHostsFile = "allowed-hosts"

// Secrets reads BMC credentials from a secrets directory: one folder per
// secret, holding files username, password and allowed-hosts, as
// Kubernetes mounts a secret. Files are read on every Resolve, so a rotated
// secret is used by the next BMC operation without a restart (Kubernetes
// updates a mounted secret by swapping a symlink, which a cache keyed by
// file times can miss).
type Secrets struct {
	dir string
}

// NewSecrets returns Secrets reading from dir; an empty dir is allowed and
// makes every Resolve fail with a message saying so, because a server
// without BMC-managed hardware needs no secrets directory.
func NewSecrets(dir string) *Secrets {
	return &Secrets{dir: dir}
}

// Dir returns the secrets directory.
func (s *Secrets) Dir() string {
	if s == nil {
		return ""
	}
	return s.dir
}

// Resolve reads the credentials ref names, for a BMC at host. It looks in
// ref.Paths() order (<namespace>/<name>, then <name>) and uses the first
// folder that exists. The folder's allowed-hosts file must list host, or
// the password is not even read (EINVALID: see AllowedHostsFile).
// Errors are ENOTFOUND for a missing secret or file and EINVALID for a
// missing directory or a malformed name; they name the files expected and
// never contain the secret's content.
func (s *Secrets) Resolve(ref schema.SecretRef, host string) (Credentials, error) {
	if s == nil || s.dir == "" {
		return Credentials{}, state.Errorf(state.EINVALID, "cannot read BMC secret %q: no --secrets-dir configured", refName(ref))
	}
	if ref.Name == "" {
		return Credentials{}, state.Errorf(state.EINVALID, "no BMC secret named: the bmc block needs credentialsRef (or the Machine authSecretRef)")
	}
	for _, part := range []string{ref.Namespace, ref.Name} {
		if part != "" && (part == "." || part == ".." || strings.ContainsAny(part, `/\`) || strings.ContainsRune(part, 0)) {
			return Credentials{}, state.Errorf(state.EINVALID, "BMC secret %q: %q is not a valid name", refName(ref), part)
		}
	}
	info, err := os.Stat(s.dir)
	if err != nil || !info.IsDir() {
		return Credentials{}, state.Errorf(state.EINVALID, "cannot read BMC secret %q: secrets directory %s does not exist or is not a directory", refName(ref), s.dir)
	}
	var want []string
	for _, p := range ref.Paths() {
		folder := filepath.Join(s.dir, filepath.FromSlash(p))
		if fi, err := os.Stat(folder); err == nil && fi.IsDir() {
			if err := checkAllowedHost(ref, folder, host); err != nil {
				return Credentials{}, err
			}
			return readCredentials(ref, folder)
		}
		want = append(want, filepath.Join(folder, "username"))
	}
	return Credentials{}, state.Errorf(state.ENOTFOUND, "secret %q not found in secrets directory: want %s", refName(ref), strings.Join(want, " or "))
}

// Unbound lists the secrets of the directory (<name> or <namespace>/<name>
// folders holding a password file) that have no allowed-hosts file, and so
// are sent to no BMC: the server warns of them at start, so an upgrade
// that predates the binding is noticed before the first BMC operation
// fails. Unreadable folders are skipped; the error is only for the
// directory itself.
func (s *Secrets) Unbound() ([]string, error) {
	if s == nil || s.dir == "" {
		return nil, nil
	}
	var out []string
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		entries, err := os.ReadDir(filepath.Join(s.dir, rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			// Kubernetes mounts a secret through ..data and dot links.
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			folder := filepath.Join(rel, e.Name())
			fi, err := os.Stat(filepath.Join(s.dir, folder))
			if err != nil || !fi.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(s.dir, folder, "password")); err == nil {
				if _, err := os.Stat(filepath.Join(s.dir, folder, AllowedHostsFile)); err != nil {
					out = append(out, filepath.ToSlash(folder))
				}
				continue
			}
			if depth == 0 {
				_ = walk(folder, 1)
			}
		}
		return nil
	}
	if err := walk("", 0); err != nil {
		return nil, state.Errorf(state.EINVALID, "read secrets directory %s: %v", s.dir, err)
	}
	return out, nil
}

// checkAllowedHost refuses a secret for a BMC at host unless the folder's
// allowed-hosts file lists host. The messages say which secret, which
// address and which file, so an operator knows what to bind.
func checkAllowedHost(ref schema.SecretRef, folder, host string) error {
	file := filepath.Join(folder, AllowedHostsFile)
	text, err := readSecretFile(ref, file)
	if state.ErrorCode(err) == state.ENOTFOUND {
		return state.Errorf(state.EINVALID, "BMC secret %q may not be sent to %s: it is bound to no BMC address; list the addresses it is for, one a line, in %s (see SECURITY.md, \"BMC credentials\")", refName(ref), host, file)
	}
	if err != nil {
		return err
	}
	if hostAllowed(text, host) {
		return nil
	}
	return state.Errorf(state.EINVALID, "BMC secret %q may not be sent to %s: that address is not listed in %s", refName(ref), host, file)
}

// hostAllowed reports whether an allowed-hosts text lists host: the same
// IP address, an IP prefix holding it, or the same name (case-insensitive;
// names are never resolved, so what is compared is what was written).
func hostAllowed(text, host string) bool {
	host = strings.Trim(strings.TrimSpace(host), "[]")
	if host == "" || strings.ContainsAny(host, "/# \t") {
		return false // no address: a prefix or a comment is not a BMC
	}
	ip, _ := netip.ParseAddr(host)
	for line := range strings.Lines(text) {
		entry := strings.Trim(strings.TrimSpace(line), "[]")
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		switch {
		case ip.IsValid() && strings.Contains(entry, "/"):
			if p, err := netip.ParsePrefix(entry); err == nil && p.Contains(ip.Unmap()) {
				return true
			}
		case ip.IsValid():
			if e, err := netip.ParseAddr(entry); err == nil && e.Unmap() == ip.Unmap() {
				return true
			}
		default:
			if strings.EqualFold(entry, host) {
				return true
			}
		}
	}
	return false
}

// readCredentials reads username and password from folder.
func readCredentials(ref schema.SecretRef, folder string) (Credentials, error) {
	user, err := readSecretFile(ref, filepath.Join(folder, "username"))
	if err != nil {
		return Credentials{}, err
	}
	pass, err := readSecretFile(ref, filepath.Join(folder, "password"))
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Username: user, Password: pass, Secret: folder}, nil
}

// readSecretFile reads one file of a secret, without its trailing newline
// (editors and `echo` add one; BMC passwords never end with one).
func readSecretFile(ref schema.SecretRef, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", state.Errorf(state.ENOTFOUND, "secret %q has no %s file: want %s", refName(ref), filepath.Base(file), file)
		}
		// The error names the file and the reason (permission denied), not
		// its content.
		return "", state.Errorf(state.EINTERNAL, "secret %q: %v", refName(ref), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", state.Errorf(state.EINTERNAL, "secret %q: read %s: %v", refName(ref), file, err)
	}
	if len(b) > maxSecretFile {
		return "", state.Errorf(state.EINVALID, "secret %q: %s is larger than %d bytes", refName(ref), file, maxSecretFile)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// refName prints a secret reference as namespace/name, or the name alone.
func refName(ref schema.SecretRef) string {
	if ref.Namespace == "" {
		return ref.Name
	}
	return ref.Namespace + "/" + ref.Name
}
