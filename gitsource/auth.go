package gitsource

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// The files ReadAuthDir reads. They are the keys of a Kubernetes secret
// (flux's names, and kubernetes.io/ssh-auth's ssh-privatekey), so a secret
// mounted as a directory works as it is.
const (
	// AuthUsername is the https username, or the ssh user when the URL
	// names none.
	AuthUsername = "username"
	// AuthPassword is the https basic-auth password.
	AuthPassword = "password"
	// AuthToken is an access token sent as the basic-auth password (GitHub,
	// GitLab and Gitea accept this; username defaults to "git").
	AuthToken = "token"
	// AuthBearerToken is sent as "Authorization: Bearer <token>".
	AuthBearerToken = "bearerToken"
	// AuthIdentity is the ssh private key (PEM or OpenSSH format).
	AuthIdentity = "identity"
	// AuthSSHPrivateKey is the kubernetes.io/ssh-auth name of the key,
	// read when AuthIdentity is absent.
	AuthSSHPrivateKey = "ssh-privatekey"
	// AuthPassphrase decrypts an encrypted private key.
	AuthPassphrase = "passphrase"
	// AuthKnownHosts holds the ssh host keys, in OpenSSH known_hosts
	// format. Without it the user's and the system's known_hosts files
	// are used; host keys are always checked.
	AuthKnownHosts = "known_hosts"
	// AuthCAFile holds extra PEM certificates trusted for https.
	AuthCAFile = "ca.crt"
)

// maxAuthFile bounds each file read from an auth directory.
const maxAuthFile = 1 << 20

// Auth holds the credentials for a remote. The zero value is no
// credentials.
type Auth struct {
	// Username is the https user, or the ssh user when the URL has none.
	Username string
	// Password is the https basic-auth password.
	Password string
	// Token is sent as the basic-auth password when Password is empty.
	Token string
	// BearerToken, if set, is sent as a bearer token instead.
	BearerToken string
	// SSHKey is the private key for ssh, PEM or OpenSSH format.
	SSHKey []byte
	// SSHPassphrase decrypts SSHKey.
	SSHPassphrase string
	// KnownHostsFiles hold the ssh host keys; empty means SSH_KNOWN_HOSTS,
	// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
	KnownHostsFiles []string
	// CABundle holds extra PEM certificates trusted for https.
	CABundle []byte
}

// ReadAuthDir reads the credentials in dir (see the Auth* file names);
// files that are absent are left empty and other files are ignored.
// Trailing white space is trimmed from the one-line values. dir "" yields
// no credentials.
func ReadAuthDir(dir string) (*Auth, error) {
	a := &Auth{}
	if dir == "" {
		return a, nil
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("read auth dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("read auth dir: %s is not a directory", dir)
	}
	read := func(name string) ([]byte, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read auth dir: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
		if err != nil {
			return nil, fmt.Errorf("read auth dir: %s: %w", name, err)
		}
		if len(b) > maxAuthFile {
			return nil, fmt.Errorf("read auth dir: %s is larger than 1 MiB", name)
		}
		return b, nil
	}
	line := func(name string, dst *string) error {
		b, err := read(name)
		*dst = strings.TrimRight(string(b), " \t\r\n")
		return err
	}
	for name, dst := range map[string]*string{
		AuthUsername: &a.Username, AuthPassword: &a.Password, AuthToken: &a.Token,
		AuthBearerToken: &a.BearerToken, AuthPassphrase: &a.SSHPassphrase,
	} {
		if err := line(name, dst); err != nil {
			return nil, err
		}
	}
	var err error
	for _, name := range []string{AuthIdentity, AuthSSHPrivateKey} {
		if a.SSHKey, err = read(name); err != nil {
			return nil, err
		}
		if a.SSHKey != nil {
			break
		}
	}
	if a.CABundle, err = read(AuthCAFile); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, AuthKnownHosts)); err == nil {
		a.KnownHostsFiles = []string{filepath.Join(dir, AuthKnownHosts)}
	}
	return a, nil
}

// secrets lists the values that must never be shown.
func (a *Auth) secrets() []string {
	if a == nil {
		return nil
	}
	return []string{a.Password, a.Token, a.BearerToken, a.SSHPassphrase}
}

// Method returns the go-git auth method for repoURL: basic or bearer auth
// for http(s), public-key auth with host key checking for ssh, nil for
// git:// and file://.
func (a *Auth) Method(repoURL string) (transport.AuthMethod, error) {
	return a.method(repoURL, DefaultTimeout)
}

func (a *Auth) method(repoURL string, timeout time.Duration) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(repoURL)
	if err != nil {
		return nil, fmt.Errorf("parse repository URL %s: %w", RedactURL(repoURL), err)
	}
	switch ep.Protocol {
	case "http", "https":
		switch {
		case a.BearerToken != "":
			return &githttp.TokenAuth{Token: a.BearerToken}, nil
		case a.Password != "" || a.Token != "":
			user := a.Username
			if user == "" {
				user = "git"
			}
			pass := a.Password
			if pass == "" {
				pass = a.Token
			}
			return &githttp.BasicAuth{Username: user, Password: pass}, nil
		}
		return nil, nil
	case "ssh":
		return a.sshMethod(ep, timeout)
	}
	return nil, nil
}

// sshMethod builds public-key auth whose client offers exactly the host key
// algorithms known_hosts has for the host: left to its defaults, the client
// may negotiate a key type the file does not hold and fail with
// "knownhosts: key mismatch" although the host is known.
func (a *Auth) sshMethod(ep *transport.Endpoint, timeout time.Duration) (transport.AuthMethod, error) {
	if len(a.SSHKey) == 0 {
		return nil, fmt.Errorf("ssh to %s needs a private key: put it in the auth dir as %q", ep.Host, AuthIdentity)
	}
	user := ep.User
	if user == "" {
		user = a.Username
	}
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHPassphrase)
	if err != nil {
		return nil, fmt.Errorf("read ssh private key: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(a.KnownHostsFiles...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts (put one in the auth dir as %q): %w", AuthKnownHosts, err)
	}
	port := ep.Port
	if port <= 0 {
		port = 22
	}
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(port))
	algos := db.HostKeyAlgorithms(hostPort)
	if len(algos) == 0 {
		return nil, fmt.Errorf("ssh host %s is not in known_hosts: add its key (ssh-keyscan -p %d %s)", hostPort, port, ep.Host)
	}
	keys.HostKeyCallbackHelper = gitssh.HostKeyCallbackHelper{
		HostKeyCallback:   db.HostKeyCallback(),
		HostKeyAlgorithms: algos,
	}
	return &sshAuth{PublicKeys: keys, timeout: timeout}, nil
}

// sshAuth sets the dial timeout, the one deadline go-git's ssh transport
// takes from its configuration rather than from a context.
type sshAuth struct {
	*gitssh.PublicKeys
	timeout time.Duration
}

// ClientConfig returns the ssh client configuration, with the dial timeout.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	c, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	c.Timeout = a.timeout
	return c, nil
}

var (
	// httpUserinfo matches the userinfo of http(s) URLs, which may be a
	// token on its own.
	httpUserinfo = regexp.MustCompile(`(?i)(https?://)[^/@\s]*@`)
	// urlPassword matches a password in the userinfo of a URL of any
	// scheme (ssh://, git://, ...), keeping the user.
	urlPassword = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^/:@\s]*):[^/@\s]*@`)
)

// RedactURL removes credentials from a repository URL, or from any text
// holding URLs: the whole userinfo of http(s) URLs (it may be a token on
// its own), the password of any other. It is the one redaction of --repo:
// everything that shows a repository URL (the listening line, logs, the
// source's status, errors) shows it through this.
func RedactURL(s string) string {
	s = httpUserinfo.ReplaceAllString(s, "$1")
	return urlPassword.ReplaceAllString(s, "$1@")
}

// redactor removes credentials from text.
type redactor []string

func (r redactor) text(s string) string {
	s = RedactURL(s)
	for _, secret := range r {
		// Shorter values would garble ordinary words; such a secret is
		// weak enough that hiding it hardly matters.
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// error returns err with credentials removed from its text, on one line
// (servers' messages end in newlines). It still unwraps to err, so
// errors.Is works; callers show only its Error text.
func (r redactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.TrimRight(strings.Join(strings.Fields(r.text(err.Error())), " "), ": ")
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
