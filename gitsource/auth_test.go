package gitsource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
)

// sshKey is a key pair for tests.
type sshKey struct {
	signer ssh.Signer
	pem    []byte
}

func newEd25519Key(tb testing.TB, passphrase string) sshKey {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(tb, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(tb, err)
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	require.NoError(tb, err)
	return sshKey{signer: signer, pem: pem.EncodeToMemory(block)}
}

func newECDSAKey(tb testing.TB) sshKey {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(tb, err)
	return sshKey{signer: signer}
}

// knownHostsLine is the known_hosts entry of key for addr (host:port).
func knownHostsLine(addr string, key ssh.PublicKey) []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n")
}

func TestReadAuthDir(t *testing.T) {
	t.Parallel()
	dir := writeAuthDir(t, map[string][]byte{
		"username":       []byte("operator\n"),
		"password":       []byte("pa ss\r\n"),
		"token":          []byte("tok\n"),
		"bearerToken":    []byte("bear\n"),
		"ssh-privatekey": []byte("second choice"),
		"identity":       []byte("KEY\n"),
		"passphrase":     []byte("phrase\n"),
		"known_hosts":    []byte("host ssh-ed25519 AAAA\n"),
		"ca.crt":         []byte("CA\n"),
		"unrelated":      []byte("ignored"),
	})
	a, err := gitsource.ReadAuthDir(dir)
	require.NoError(t, err)
	require.Equal(t, &gitsource.Auth{
		Username:        "operator",
		Password:        "pa ss",
		Token:           "tok",
		BearerToken:     "bear",
		SSHKey:          []byte("KEY\n"),
		SSHPassphrase:   "phrase",
		KnownHostsFiles: []string{filepath.Join(dir, "known_hosts")},
		CABundle:        []byte("CA\n"),
	}, a)

	dir = writeAuthDir(t, map[string][]byte{"ssh-privatekey": []byte("K8S KEY")})
	a, err = gitsource.ReadAuthDir(dir)
	require.NoError(t, err)
	require.Equal(t, &gitsource.Auth{SSHKey: []byte("K8S KEY")}, a, "a kubernetes.io/ssh-auth secret")

	a, err = gitsource.ReadAuthDir("")
	require.NoError(t, err)
	require.Equal(t, &gitsource.Auth{}, a)

	_, err = gitsource.ReadAuthDir(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "read auth dir")

	big := writeAuthDir(t, map[string][]byte{"password": make([]byte, 2<<20)})
	_, err = gitsource.ReadAuthDir(big)
	require.ErrorContains(t, err, "larger than 1 MiB")
}

func TestAuthMethod(t *testing.T) {
	t.Parallel()
	host := newEd25519Key(t, "")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(kh, knownHostsLine("git.example.com:22", host.signer.PublicKey()), 0o600))
	client := newEd25519Key(t, "")

	for _, tc := range []struct {
		name string
		auth gitsource.Auth
		url  string
		want transport.AuthMethod
		err  string
	}{
		{name: "HTTPSNone", url: "https://git.example.com/fleet.git"},
		{name: "HTTPSBasic", auth: gitsource.Auth{Username: "u", Password: "p"}, url: "https://git.example.com/fleet.git", want: &githttp.BasicAuth{Username: "u", Password: "p"}},
		{name: "HTTPSToken", auth: gitsource.Auth{Token: "t"}, url: "https://git.example.com/fleet.git", want: &githttp.BasicAuth{Username: "git", Password: "t"}},
		{name: "HTTPSTokenWithUser", auth: gitsource.Auth{Username: "oauth2", Token: "t"}, url: "http://git.example.com/fleet.git", want: &githttp.BasicAuth{Username: "oauth2", Password: "t"}},
		{name: "HTTPSBearer", auth: gitsource.Auth{BearerToken: "b", Password: "p"}, url: "https://git.example.com/fleet.git", want: &githttp.TokenAuth{Token: "b"}},
		{name: "GitProtocolIgnoresCredentials", auth: gitsource.Auth{Password: "p"}, url: "git://git.example.com/fleet.git"},
		{name: "File", auth: gitsource.Auth{Password: "p"}, url: "file:///srv/fleet.git"},
		{name: "SSHNoKey", url: "ssh://git@git.example.com/fleet.git", err: `needs a private key: put it in the auth dir as "identity"`},
		{name: "SSHBadKey", auth: gitsource.Auth{SSHKey: []byte("nope")}, url: "git@git.example.com:fleet.git", err: "read ssh private key"},
		{name: "SSHUnknownHost", auth: gitsource.Auth{SSHKey: client.pem, KnownHostsFiles: []string{kh}}, url: "git@other.example.com:fleet.git", err: "ssh host other.example.com:22 is not in known_hosts"},
		{name: "SSHWrongPort", auth: gitsource.Auth{SSHKey: client.pem, KnownHostsFiles: []string{kh}}, url: "ssh://git@git.example.com:2222/fleet.git", err: "ssh host git.example.com:2222 is not in known_hosts: add its key (ssh-keyscan -p 2222 git.example.com)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.auth.Method(tc.url)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, m)
		})
	}
}

// The ssh client must offer only the host key algorithms known_hosts has
// for the host. Left to its defaults it prefers ECDSA to Ed25519, so a
// server with both keys and a known_hosts with only the Ed25519 one fails
// with "knownhosts: key mismatch" (go-git's long-standing issue).
func TestAuthMethod_SSHHostKeyAlgorithms(t *testing.T) {
	t.Parallel()
	ed := newEd25519Key(t, "")
	ec := newECDSAKey(t)
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, append(
		knownHostsLine("git.example.com:22", ed.signer.PublicKey()),
		knownHostsLine("other.example.com:2222", ec.signer.PublicKey())...), 0o600))
	client := newEd25519Key(t, "")
	auth := gitsource.Auth{Username: "deploy", SSHKey: client.pem, KnownHostsFiles: []string{kh}}

	clientConfig := func(url string) *ssh.ClientConfig {
		m, err := auth.Method(url)
		require.NoError(t, err)
		cm, ok := m.(interface {
			ClientConfig() (*ssh.ClientConfig, error)
		})
		require.True(t, ok, "%T is an ssh auth method", m)
		cfg, err := cm.ClientConfig()
		require.NoError(t, err)
		return cfg
	}

	cfg := clientConfig("git@git.example.com:org/fleet.git")
	require.Equal(t, []string{ssh.KeyAlgoED25519}, cfg.HostKeyAlgorithms)
	require.Equal(t, "git", cfg.User, "the URL's user wins")
	require.Equal(t, gitsource.DefaultTimeout, cfg.Timeout, "the dial has a deadline")
	addr := fakeAddr("192.0.2.1:22")
	require.NoError(t, cfg.HostKeyCallback("git.example.com:22", addr, ed.signer.PublicKey()))
	require.Error(t, cfg.HostKeyCallback("git.example.com:22", addr, ec.signer.PublicKey()), "a key known_hosts does not hold")
	require.Error(t, cfg.HostKeyCallback("unknown.example.com:22", addr, ed.signer.PublicKey()))

	cfg = clientConfig("ssh://other.example.com:2222/fleet.git")
	require.Equal(t, []string{ssh.KeyAlgoECDSA256}, cfg.HostKeyAlgorithms)
	require.Equal(t, "deploy", cfg.User, "the auth dir's user when the URL has none")
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// TestGit_SSH fetches from a real ssh server (golang.org/x/crypto/ssh
// running git-upload-pack, as a Git host's ssh daemon does) that has an ECDSA and
// an Ed25519 host key, with a known_hosts that holds only the Ed25519 one.
func TestGit_SSH(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	c1 := repo.Commit("first", map[string]string{"hardware/n1.yaml": hw1})
	ed := newEd25519Key(t, "")
	ec := newECDSAKey(t)
	client := newEd25519Key(t, "")
	addr := serveSSH(t, repo.Base, client.signer.PublicKey(), ec.signer, ed.signer)
	url := "ssh://git@" + addr + "/" + repo.Name
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		auth := writeAuthDir(t, map[string][]byte{"identity": client.pem, "known_hosts": knownHostsLine(addr, ed.signer.PublicKey())})
		g := newGit(t, gitsource.Config{Repo: url, AuthDir: auth})
		snap, err := g.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, "main@sha1:"+c1, snap.Revision)
		require.Equal(t, hw1, readAll(t, snap, "hardware/n1.yaml"))

		c2 := repo.Commit("second", map[string]string{"hardware/n1.yaml": hw1 + "spec: {}\n"})
		runSource(t, g)
		g.Trigger()
		snap = waitChange(t, g, 5*time.Second)
		require.Equal(t, "main@sha1:"+c2, snap.Revision)
	})
	t.Run("EncryptedKey", func(t *testing.T) {
		enc := newEd25519Key(t, "open sesame")
		addr := serveSSH(t, repo.Base, enc.signer.PublicKey(), ed.signer)
		auth := writeAuthDir(t, map[string][]byte{"identity": enc.pem, "passphrase": []byte("open sesame\n"), "known_hosts": knownHostsLine(addr, ed.signer.PublicKey())})
		g := newGit(t, gitsource.Config{Repo: "ssh://git@" + addr + "/" + repo.Name, AuthDir: auth})
		_, err := g.Snapshot(ctx)
		require.NoError(t, err)
	})
	t.Run("WrongHostKey", func(t *testing.T) {
		other := newEd25519Key(t, "")
		auth := writeAuthDir(t, map[string][]byte{"identity": client.pem, "known_hosts": knownHostsLine(addr, other.signer.PublicKey())})
		g := newGit(t, gitsource.Config{Repo: url, AuthDir: auth})
		_, err := g.Snapshot(ctx)
		require.ErrorContains(t, err, "key mismatch")
	})
	t.Run("UnknownClientKey", func(t *testing.T) {
		stranger := newEd25519Key(t, "")
		auth := writeAuthDir(t, map[string][]byte{"identity": stranger.pem, "known_hosts": knownHostsLine(addr, ed.signer.PublicKey())})
		g := newGit(t, gitsource.Config{Repo: url, AuthDir: auth})
		_, err := g.Snapshot(ctx)
		require.ErrorContains(t, err, "unable to authenticate")
	})
	t.Run("WithoutAlgorithmsGoGitFails", func(t *testing.T) {
		// What the source avoids: the same known_hosts with go-git's
		// public-key auth and no host key algorithms.
		kh := filepath.Join(t.TempDir(), "known_hosts")
		require.NoError(t, os.WriteFile(kh, knownHostsLine(addr, ed.signer.PublicKey()), 0o600))
		keys, err := gitssh.NewPublicKeys("git", client.pem, "")
		require.NoError(t, err)
		cb, err := gitssh.NewKnownHostsCallback(kh)
		require.NoError(t, err)
		keys.HostKeyCallback = cb
		rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
		_, err = rem.ListContext(ctx, &git.ListOptions{Auth: keys})
		require.ErrorContains(t, err, "key mismatch")
	})
}

// TestRedactURL: every form of credentials in a repository URL is removed,
// in a URL alone or in text that quotes one.
func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://fleet-bot:pa55@git.example/fleet.git":       "https://git.example/fleet.git",
		"http://ghp_token123@git.example/fleet.git":          "http://git.example/fleet.git",
		"ssh://git:pa55@git.example:22/fleet.git":            "ssh://git@git.example:22/fleet.git",
		"git://u:pa55@git.example/fleet.git":                 "git://u@git.example/fleet.git",
		"GIT+SSH://u:pa55@git.example/fleet.git":             "GIT+SSH://u@git.example/fleet.git",
		"ls-remote https://u:pa55@h/r.git: dial tcp refused": "ls-remote https://h/r.git: dial tcp refused",
		"git@github.com:org/fleet.git":                       "git@github.com:org/fleet.git",
		"ssh://git@git.example/fleet.git":                    "ssh://git@git.example/fleet.git",
		"/srv/fleet":                                         "/srv/fleet",
	} {
		require.Equal(t, want, gitsource.RedactURL(in), in)
	}
}
