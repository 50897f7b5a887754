package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mobyclient "github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/citest"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/worker/dockertest"
)

// agentMAC is the machine's MAC: HookOS gives it to the agent as its id
// (worker_id= on the kernel line) when the hardware has no agentID.
const agentMAC = "52:54:00:00:00:01"

// mustTinkAgent returns the path of Tinkerbell's tink-agent, built
// unchanged from Tinkerbell's source, from TINK_AGENT (.ci/run sets it).
// Under CI=true a missing agent fails the test.
func mustTinkAgent(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TINK_AGENT")
	_, err := os.Stat(p)
	if p != "" && err == nil {
		return p
	}
	msg := fmt.Sprintf("the Tinkerbell agent tests run the real tink-agent named by TINK_AGENT (got %q: %v)", p, err)
	citest.Missing(t, msg)
	return ""
}

// privilegeProxy serves the Docker Engine API on a unix socket of its own
// in front of the machine's engine. tink-agent's docker runtime always
// creates privileged containers, and the engine on our machines refuses
// them ("unable to apply caps"), so the proxy clears
// HostConfig.Privileged on container creation (and labels the container
// for cleanup); it answers image pulls at once with an error, as a machine
// without a registry would, after which the agent uses the local image (as
// with images embedded in HookOS). Everything else, attach and wait
// included, passes through unchanged. privileged counts the creations
// that asked for privileges.
func privilegeProxy(t *testing.T, engine *mobyclient.Client) (sock string, privileged *atomic.Int64) {
	t.Helper()
	upstream := "/var/run/docker.sock"
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		upstream = h
	}
	dir, err := os.MkdirTemp("", "tinkops-agent-") // short: unix socket paths are limited
	require.NoError(t, err)
	sock = filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	privileged = new(atomic.Int64)
	label := dockertest.LabelTest + "=" + t.Name()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		}},
		FlushInterval: -1,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/images/create"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"this test machine reaches no registry"}` + "\n"))
			return
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/containers/create"):
			dec := json.NewDecoder(r.Body)
			dec.UseNumber()
			var doc map[string]any
			if err := dec.Decode(&doc); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if hc, ok := doc["HostConfig"].(map[string]any); ok {
				if p, _ := hc["Privileged"].(bool); p {
					privileged.Add(1)
				}
				hc["Privileged"] = false
			}
			labels, _ := doc["Labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
			}
			labels[dockertest.LabelTest] = t.Name()
			doc["Labels"] = labels
			body, _ := json.Marshal(doc)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			r.Header.Set("Content-Length", fmt.Sprint(len(body)))
		}
		rp.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := engine.ContainerList(ctx, mobyclient.ContainerListOptions{All: true, Filters: mobyclient.Filters{}.Add("label", label)})
		if err == nil {
			for _, c := range res.Items {
				_, _ = engine.ContainerRemove(ctx, c.ID, mobyclient.ContainerRemoveOptions{Force: true})
			}
		}
	})
	return sock, privileged
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tink-server"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

// agentHardware is node-01 as a Tinkerbell site declares it: it allows
// workflows and its address is the one the agent calls from.
const agentHardware = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01}
spec:
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:01", ip: {address: 127.0.0.1, netmask: 255.0.0.0}}
      netboot: {allowPXE: true, allowWorkflow: true}
`

// agentWorkflow writes a Tinkerbell template whose actions run shell
// scripts in image, with the host directory dir mounted on /out and the
// environment rendered from the hardware, and its workflow for node-01.
func agentWorkflow(s *scenario, name, image string, timeout int, scripts ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: \"0.1\"\nname: %s\nglobal_timeout: 300\ntasks:\n  - name: os-installation\n    worker: \"{{.device_1}}\"\n    volumes: [\"%s:/out\"]\n    environment: {DISK: \"{{ index .Hardware.Disks 0 }}\"}\n    actions:\n", name, s.dir)
	for i, script := range scripts {
		fmt.Fprintf(&b, "      - name: %s-%d\n        image: %s\n        timeout: %d\n        command: [\"/bin/sh\", \"-c\", %q]\n        environment: {MODE: 0644}\n", name, i+1, image, timeout, script)
	}
	s.write("templates/"+name+".yaml", b.String())
	s.write("workflows/"+name+".yaml", fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\nspec: {templateRef: %s, hardwareRef: node-01, hardwareMap: {device_1: %q}}\n", name, name, agentMAC))
}

// agentRig is one tink-server process (killed and restarted at will on
// its data directory and port) and the client that reads its state.
type agentRig struct {
	t      *testing.T
	bin    string
	args   []string
	addr   string
	server *exec.Cmd
	c      *client.Client
}

func (r *agentRig) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(r.t, cmd.Start())
	r.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r.server = cmd
}

// run waits for the workflow's run to end and returns it.
func (r *agentRig) run(wf string, within time.Duration) *client.Run {
	r.t.Helper()
	var run *client.Run
	require.Eventually(r.t, func() bool {
		o, err := r.c.Get(context.Background(), client.Workflows, "", wf)
		if err != nil || o.Status == nil || o.Status.Run == nil {
			return false
		}
		run = o.Status.Run
		return state.RunState(run.State).Terminal()
	}, within, 100*time.Millisecond, "run of %s: %+v", wf, run)
	return run
}

// TestTinkerbellAgentEndToEnd: tink-server with --tinkerbell-agents and
// Tinkerbell's own tink-agent, unchanged, configured as HookOS configures
// it (TINKERBELL_GRPC_AUTHORITY = the API port, TINKERBELL_TLS, WORKER_ID
// and ID = the MAC), running actions in real containers of the machine's
// Docker Engine (through privilegeProxy: this engine refuses privileged
// containers). In plaintext (h2c) and over TLS with the server's
// certificate, the agent verifying it: a 3-action template succeeds with
// the rendered environment and a host volume seen from inside; a failing
// action fails the run with the agent's message in the events; a hanging
// one times out; tink-server SIGKILLed mid-action and restarted, the agent
// goes on and every action ran exactly once; and each of these is another
// workflow for the same machine, run after the one before.
func TestTinkerbellAgentEndToEnd(t *testing.T) {
	agent := mustTinkAgent(t)
	engine := dockertest.MustEngine(t)
	image := dockertest.MustBusyboxImage(t, engine)
	serverBin := buildBinary(t, "tink-server", ".")
	for _, withTLS := range []bool{false, true} {
		name := "Plaintext"
		if withTLS {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) { agentScenario(t, agent, serverBin, image, engine, withTLS) })
	}
}

func agentScenario(t *testing.T, agent, serverBin, image string, engine *mobyclient.Client, withTLS bool) {
	ctx := context.Background()
	// The agent names its containers after the action and its id, which
	// holds the workflow: unique workflow names keep concurrent runs of this
	// test on one engine apart.
	wf := map[string]string{}
	for _, w := range []string{"three", "fails", "hangs", "survives"} {
		wf[w] = w + "-" + dockertest.RandomHex(t)[:6]
	}
	s := newScenario(t)
	s.write("hardware/node-01.yaml", agentHardware)
	agentWorkflow(s, wf["three"], image, 30,
		`echo "one $DISK $MODE" >> /out/log`,
		`echo "two $(cat /out/log | head -1)" >> /out/log`,
		`echo three >> /out/log`)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	rig := &agentRig{t: t, bin: serverBin, addr: addr,
		args: []string{"--repo", s.repo, "--data-dir", t.TempDir(), "--listen", addr, "--tinkerbell-agents", "--poll-interval", "1s"}}
	scheme, hc := "http", &http.Client{}
	env := []string{"TINKERBELL_GRPC_AUTHORITY=" + addr, "TINKERBELL_TLS=false", "TINKERBELL_INSECURE_TLS=false", "WORKER_ID=" + agentMAC, "ID=" + agentMAC}
	if withTLS {
		cert, key := selfSignedCert(t)
		rig.args = append(rig.args, "--tls-cert", cert, "--tls-key", key)
		pem, err := os.ReadFile(cert)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		scheme, hc = "https", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		// The agent verifies the server's certificate against the
		// system's roots; SSL_CERT_FILE makes the test's CA one of them.
		env = []string{"TINKERBELL_GRPC_AUTHORITY=" + addr, "TINKERBELL_TLS=true", "TINKERBELL_INSECURE_TLS=false", "WORKER_ID=" + agentMAC, "ID=" + agentMAC, "SSL_CERT_FILE=" + cert}
	}
	rig.c, err = client.New(scheme+"://"+addr, "", hc)
	require.NoError(t, err)
	rig.start()

	sock, privileged := privilegeProxy(t, engine)
	var agentLog apitest.Buffer
	cmd := exec.Command(agent, "--docker-socket", sock)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &agentLog, &agentLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("tink-agent's log:\n%s", agentLog.String())
		}
	})

	// Three actions in real containers, then SUCCESS.
	run := rig.run(wf["three"], 90*time.Second)
	require.Equal(t, "SUCCESS", run.State, run.Reason)
	require.Equal(t, []string{"one /dev/sda 0644", "two one /dev/sda 0644", "three"}, s.lines("log"), "environment as rendered (0644 as text), host volume written and read from inside")
	require.Positive(t, privileged.Load(), "the agent asks for privileged containers; the proxy clears it")
	hw, err := rig.c.Get(ctx, client.Hardware, "", "node-01")
	require.NoError(t, err)
	var st struct {
		Agent struct {
			ID         string `json:"id"`
			Attributes struct {
				CPU struct {
					TotalCores int `json:"totalCores"`
				} `json:"cpu"`
			} `json:"attributes"`
		} `json:"agent"`
	}
	require.NoError(t, json.Unmarshal(hw.Status.Runtime, &st))
	require.Equal(t, agentMAC, st.Agent.ID)
	require.Positive(t, st.Agent.Attributes.CPU.TotalCores, "the attributes the agent discovered, decoded and kept on the hardware: %s", hw.Status.Runtime)

	// A failing action and a hanging one: two more workflows for the
	// same machine.
	agentWorkflow(s, wf["fails"], image, 30, `echo "disk /dev/sda is busy"; exit 1`)
	run = rig.run(wf["fails"], 60*time.Second)
	require.Equal(t, "FAILED", run.State, run.Reason)
	require.Equal(t, "action completed", run.Actions[0].Message, "the agent's message (this agent sends no output)")
	evs, err := rig.c.WorkflowEvents(ctx, "", wf["fails"], client.EventOptions{})
	require.NoError(t, err)
	var failed string
	for _, e := range evs.Items {
		if e.Type == state.EventActionState && e.State == state.RunFailed {
			failed = e.Message
		}
	}
	require.Contains(t, failed, run.Actions[0].Message, "the agent's message is in the action's event")

	agentWorkflow(s, wf["hangs"], image, 3, `sleep 300`)
	run = rig.run(wf["hangs"], 60*time.Second)
	require.Equal(t, "TIMEOUT", run.State, run.Reason)

	// tink-server SIGKILLed while an action runs, started again: the
	// agent goes on and every action ran exactly once.
	agentWorkflow(s, wf["survives"], image, 60, `echo start >> /out/kill; sleep 5; echo end >> /out/kill`, `echo after >> /out/kill`)
	require.Eventually(t, func() bool { return len(s.lines("kill")) == 1 }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, rig.server.Process.Signal(syscall.SIGKILL))
	_ = rig.server.Wait()
	time.Sleep(500 * time.Millisecond)
	rig.start()
	run = rig.run(wf["survives"], 90*time.Second)
	require.Equal(t, "SUCCESS", run.State, run.Reason)
	require.Equal(t, []string{"start", "end", "after"}, s.lines("kill"), "each action ran exactly once")
	for _, a := range run.Actions {
		require.Equal(t, 1, a.Attempt, "%s handed out once", a.Name)
	}

	select {
	case err := <-exited:
		t.Fatalf("tink-agent exited (%v); under HookOS nothing would restart it", err)
	default:
	}
}

// lines returns the lines of a file in the scenario's host directory.
func (s *scenario) lines(name string) []string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
