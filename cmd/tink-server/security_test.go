package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// writeTokens writes an auth file of tokens (name -> role, hardware) and
// returns its path; each token's secret is "secret-<name>".
func writeTokens(t *testing.T, tokens ...api.Token) string {
	t.Helper()
	var b strings.Builder
	for _, tk := range tokens {
		b.WriteString("- {name: " + tk.Name + ", role: " + string(tk.Role) + ", sha256: " + api.HashToken("secret-"+tk.Name))
		if tk.Hardware != "" {
			b.WriteString(", hardware: " + tk.Hardware)
		}
		b.WriteString("}\n")
	}
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

func tokenClient(t *testing.T, m *Main, name string) *client.Client {
	t.Helper()
	c, err := client.New("http://"+m.Addr(), "secret-"+name, nil)
	require.NoError(t, err)
	return c
}

// send makes a request with the token of name and returns the status and
// the body.
func send(t *testing.T, m *Main, name, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+m.Addr()+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer secret-"+name)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func statusOf(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.StatusCode
	}
	return 0
}

// TestWorkerTokenBoundToOneHardwareObject: hardware other/node-01 (another
// namespace, its own MAC) is another machine than node-01, so node-01's
// worker token reads none of its actions (by MAC: 403; by name: nothing
// handed out) and none of its reports are taken, while other/node-01's own
// token runs it, and the events name it with its namespace.
func TestWorkerTokenBoundToOneHardwareObject(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": e2eHardware,
		"hardware/other-node-01.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: node-01, namespace: other}
spec:
  interfaces: [{dhcp: {mac: "52:54:00:00:00:02"}}]
`,
		"templates/wipe.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata: {name: wipe, namespace: other}
spec:
  data: |
    version: "0.1"
    name: wipe
    global_timeout: 300
    tasks:
      - name: main
        worker: "{{.device_1}}"
        actions:
          - name: wipe
            image: shell:v1
            timeout: 60
            environment: {DISK_KEY: the-disk-key-of-other}
`,
		"workflows/wipe.yaml": `apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: wipe, namespace: other}
spec: {templateRef: wipe, hardwareRef: node-01, hardwareMap: {device_1: "52:54:00:00:00:02"}}
`,
	})
	tokens := writeTokens(t,
		api.Token{Name: "admin", Role: api.RoleAdmin},
		api.Token{Name: "w-node-01", Role: api.RoleWorker, Hardware: "node-01"},
		api.Token{Name: "w-other-node-01", Role: api.RoleWorker, Hardware: "other/node-01"})
	m := MustRunMain(t, repo, "--auth-file", tokens)
	waitReady(t, m)
	key := state.RunKey{Namespace: "other", Workflow: "wipe", Number: 1}
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(ctx, key)
		return err == nil && r.State == state.RunRunning
	}, 10*time.Second, 20*time.Millisecond, "%v", func() any {
		st, _ := m.Store.SyncStatus(ctx)
		r, _ := m.Store.GetRun(ctx, key)
		return fmt.Sprintf("%+v %+v", *st, r)
	}())

	mine, theirs := tokenClient(t, m, "w-node-01"), tokenClient(t, m, "w-other-node-01")
	_, err := mine.NextAction(ctx, "52:54:00:00:00:02", 0)
	require.Equal(t, http.StatusForbidden, statusOf(err), "other/node-01's MAC with node-01's token: %v", err)
	require.ErrorContains(t, err, "hardware other/node-01")
	a, err := mine.NextAction(ctx, "node-01", 300*time.Millisecond)
	require.NoError(t, err)
	require.Nil(t, a, "node-01's worker is handed other/node-01's action")

	// The machine's own worker gets it, by MAC or by its bare name.
	a, err = theirs.NextAction(ctx, "node-01", time.Second)
	require.NoError(t, err)
	require.NotNil(t, a)
	require.Equal(t, "the-disk-key-of-other", a.Environment["DISK_KEY"])
	again, err := theirs.NextAction(ctx, "52:54:00:00:00:02", time.Second)
	require.NoError(t, err)
	require.Equal(t, a.Attempt, again.Attempt)
	_, err = theirs.NextAction(ctx, "52:54:00:00:00:01", 0)
	require.Equal(t, http.StatusForbidden, statusOf(err), "node-01's MAC with other/node-01's token")

	// node-01's token reports SUCCESS for it: refused either way.
	rep := client.WorkerReport{Namespace: "other", Workflow: "wipe", Run: 1, Action: 0, Attempt: a.Attempt, State: state.RunSuccess}
	err = mine.ReportAction(ctx, "node-01", rep)
	require.Equal(t, http.StatusConflict, statusOf(err), "%v", err)
	err = mine.ReportAction(ctx, "52:54:00:00:00:02", rep)
	require.Equal(t, http.StatusForbidden, statusOf(err), "%v", err)
	run, err := m.Store.GetRun(ctx, key)
	require.NoError(t, err)
	require.Equal(t, state.RunRunning, run.Actions[0].State, "a report from another machine's token changed the action")

	require.NoError(t, theirs.ReportAction(ctx, "52:54:00:00:00:02", rep))
	run, err = m.Store.GetRun(ctx, key)
	require.NoError(t, err)
	require.Equal(t, state.RunSuccess, run.State)
	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Namespace: "other", Name: "wipe"}})
	require.NoError(t, err)
	var actors []state.Actor
	for _, ev := range evs {
		if ev.Type == state.EventActionState {
			actors = append(actors, ev.Actor)
		}
	}
	require.NotEmpty(t, actors)
	for _, ac := range actors {
		require.Equal(t, state.Actor("worker:other/node-01"), ac)
	}
}

// TestBMCSecretGoesOnlyToItsAddresses: a BMC secret is sent only to the
// addresses its allowed-hosts file lists. ipmi_sim at 127.0.0.1 (listed)
// is driven; a Redfish endpoint at 127.0.0.2 posing as a BMC never sees
// the password, whether Git declares hardware pointing there (an inline
// bmc block, or a bmcRef to a Rufio Machine whose authSecretRef names the
// secret), an admin creates it through the API, or an operator tries to
// (refused: only an admin may set a BMC).
func TestBMCSecretGoesOnlyToItsAddresses(t *testing.T) {
	ctx := context.Background()
	sim := bmctest.StartIPMI(t, bmctest.WithPower(true))
	evil := bmctest.StartRedfish(t, bmctest.WithHost("127.0.0.2"), bmctest.WithUser(sim.User), bmctest.WithPassword(sim.Password))
	secrets := t.TempDir()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, sim.User, sim.Password, "# node-01's BMC", sim.Host)
	evilBMC := fmt.Sprintf("{address: %s, port: %d, protocol: redfish, credentialsRef: bmc-node-01, insecureTLS: true}", evil.Host, evil.Port)
	hardware := func(name, mac, bmc string) string {
		return fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: %s}\nspec:\n  interfaces: [{dhcp: {mac: %q}}]\n  %s\n", name, mac, bmc)
	}
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": hardware("node-01", "52:54:00:00:00:01", fmt.Sprintf("bmc: {address: %s, port: %d, protocol: ipmi, credentialsRef: bmc-node-01}", sim.Host, sim.Port)),
		"hardware/node-02.yaml": hardware("node-02", "52:54:00:00:00:02", "bmc: "+evilBMC),
		"hardware/node-03.yaml": hardware("node-03", "52:54:00:00:00:03", "bmcRef: {apiGroup: bmc.tinkerbell.org, kind: Machine, name: bmc-node-03}"),
		"bmc/bmc-node-03.yaml": fmt.Sprintf(`apiVersion: bmc.tinkerbell.org/v1alpha1
kind: Machine
metadata: {name: bmc-node-03}
spec:
  connection:
    host: %s
    insecureTLS: true
    authSecretRef: {name: bmc-node-01}
    providerOptions: {preferredOrder: [gofish], redfish: {port: %d}}
`, evil.Host, evil.Port),
	})
	tokens := writeTokens(t, api.Token{Name: "admin", Role: api.RoleAdmin}, api.Token{Name: "ops", Role: api.RoleOperator})
	m := MustRunMain(t, repo, "--secrets-dir", secrets, "--auth-file", tokens, "--bmc-timeout", "5s", "--bmc-retries", "0")
	waitReady(t, m)
	admin, ops := tokenClient(t, m, "admin"), tokenClient(t, m, "ops")

	// The allowed path: node-01's own BMC.
	res, err := ops.Power(ctx, "", "node-01", "off")
	require.NoError(t, err)
	require.Equal(t, "ipmitool", res.Provider)
	require.Equal(t, "off", sim.Power())

	// Git-declared hardware pointing the secret elsewhere.
	for _, name := range []string{"node-02", "node-03"} {
		_, err = ops.Power(ctx, "", name, "on")
		require.Error(t, err, name)
		require.Contains(t, err.Error(), `BMC secret "bmc-node-01" may not be sent to 127.0.0.2: that address is not listed in `+filepath.Join(secrets, "bmc-node-01", "allowed-hosts"), name)
	}
	// Created through the API: an operator may not set a BMC at all, and
	// an admin's hardware is held to the secret's addresses too.
	code, body := send(t, m, "ops", http.MethodPost, "/v1/hardware", hardware("node-04", "52:54:00:00:00:04", "bmc: "+evilBMC))
	require.Equal(t, http.StatusForbidden, code, body)
	code, body = send(t, m, "admin", http.MethodPost, "/v1/hardware", hardware("node-05", "52:54:00:00:00:05", "bmc: "+evilBMC))
	require.Equal(t, http.StatusCreated, code, body)
	_, err = admin.Power(ctx, "", "node-05", "on")
	require.ErrorContains(t, err, `BMC secret "bmc-node-01" may not be sent to 127.0.0.2`)

	require.False(t, evil.ReceivedPassword(), "the endpoint at 127.0.0.2 received node-01's BMC password; its calls: %v", evil.Calls())
	evs, err := m.Store.Events(ctx, state.EventQuery{Filter: state.EventFilter{Kind: state.KindHardware, Name: "node-02", Types: []state.EventType{state.EventBMC}}})
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	require.Contains(t, evs[len(evs)-1].Message, `BMC secret "bmc-node-01" may not be sent to 127.0.0.2`)
}

// buildServer builds the tink-server binary.
func buildServer(t *testing.T) string { return buildBinary(t, "tink-server", ".") }

// runServerBinary starts the tink-server binary with args on a free port;
// it returns its address and its output so far (stdout and stderr).
func runServerBinary(t *testing.T, bin string, args ...string) (addr string, output func() string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "output")
	f, err := os.Create(out)
	require.NoError(t, err)
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "debug", "--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		f.Close()
	})
	output = func() string { b, _ := os.ReadFile(out); return string(b) }
	listening := regexp.MustCompile(`listening on http://(127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool {
		m := listening.FindStringSubmatch(output())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 20*time.Second, 20*time.Millisecond, "no listening line: %s", output)
	return addr, output
}

// TestRepoPasswordNeverPrinted: the password of a --repo URL
// (https://user:pass@host/repo.git) appears nowhere an operator or a log
// collector reads: the listening line, the log (at debug), /v1/status and
// the events, whether the credentials work or are refused, and on a
// remote that does not answer.
func TestRepoPasswordNeverPrinted(t *testing.T) {
	ctx := context.Background()
	bin := buildServer(t)
	repo := gittest.NewRepo(t)
	repo.Commit("fleet", map[string]string{"hardware/node-01.yaml": e2eHardware})
	const user, good, wrong, other = "fleet-bot", "Rep0-pa55-7731", "Wr0ng-pa55-4412", "N0where-pa55-9907"
	srv := gittest.ServeHTTP(t, repo.Base, user, good, false)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := dead.Addr().String()
	require.NoError(t, dead.Close())

	for _, tc := range []struct {
		name, repo string
		ok         func(*client.Status) bool
	}{
		{"Valid", strings.Replace(srv.URL, "://", "://"+user+":"+good+"@", 1) + repo.Name,
			func(st *client.Status) bool { return st.Sync.LastAppliedRevision != "" }},
		{"Refused", strings.Replace(srv.URL, "://", "://"+user+":"+wrong+"@", 1) + repo.Name,
			func(st *client.Status) bool { return st.Source != nil && st.Source.Failures > 0 }},
		{"Unreachable", "https://" + user + ":" + other + "@" + deadAddr + "/fleet.git",
			func(st *client.Status) bool { return st.Source != nil && st.Source.Failures > 0 }},
		{"GitProtocol", "git://" + user + ":" + other + "@" + deadAddr + "/fleet.git",
			func(st *client.Status) bool { return st.Source != nil && st.Source.Failures > 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, output := runServerBinary(t, bin, "--repo", tc.repo, "--poll-interval", "200ms")
			c, err := client.New("http://"+addr, "", nil)
			require.NoError(t, err)
			var st *client.Status
			require.Eventually(t, func() bool {
				st, err = c.Status(ctx)
				return err == nil && tc.ok(st)
			}, 20*time.Second, 50*time.Millisecond)
			raw, err := json.Marshal(st)
			require.NoError(t, err)
			evs, err := c.Events(ctx, client.EventOptions{})
			require.NoError(t, err)
			rawEvents, err := json.Marshal(evs)
			require.NoError(t, err)
			require.Contains(t, output(), "listening on http://"+addr)
			for where, text := range map[string]string{"output": output(), "status": string(raw), "events": string(rawEvents)} {
				for _, pw := range []string{good, wrong, other} {
					require.NotContains(t, text, pw, "the %s shows the password", where)
				}
			}
		})
	}
}

// TestSyncOfRevisionWithErrors: POST /v1/sync on a repository with errors
// answers 200 with every error in sync.errors (as api/openapi.yaml says),
// and tink sync prints each one and exits 1, for a CI job to fail on.
func TestSyncOfRevisionWithErrors(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": e2eHardware,
		"hardware/node-02.yaml": strings.Replace(e2eHardware, "kind: Hardware", "kind: Hardwar", 1),
		"hardware/node-03.yaml": strings.Replace(strings.Replace(strings.Replace(e2eHardware, "node-01", "node-03", 1), "disks:", "diskz:", 1), ":01\"", ":03\"", 1),
	})
	m := MustRunMain(t, repo)
	waitReady(t, m)
	c, err := client.New("http://"+m.Addr(), "", nil)
	require.NoError(t, err)
	st, err := c.Sync(ctx)
	require.NoError(t, err, "a revision with errors is the answer, not a failed call")
	require.Len(t, st.Sync.Errors, 2)

	cmd := exec.Command(buildTink(t), "sync", "--server", "http://"+m.Addr())
	cmd.Env = append(os.Environ(), "TINK_TOKEN=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode(), "%s", out)
	require.Contains(t, string(out), "error: hardware/node-02.yaml:", "%s", out)
	require.Contains(t, string(out), "error: hardware/node-03.yaml:", "%s", out)
	require.Regexp(t, `has 2 error\(s\); .* stays in effect\n`, string(out))
}

// TestServerWarnsOfUnboundSecrets: at start, the log names every BMC secret
// without an allowed-hosts file (after an upgrade, before its first BMC
// operation fails).
func TestServerWarnsOfUnboundSecrets(t *testing.T) {
	secrets := t.TempDir()
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Name: "bmc-node-01"}, "admin", "pw-unbound-1")
	bmctest.WriteSecret(t, secrets, schema.SecretRef{Namespace: "lab", Name: "bmc-node-02"}, "admin", "pw-bound-2", "10.0.0.2")
	var log strings.Builder
	m := NewMain(io.Discard, &log)
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--repo", t.TempDir(),
		"--secrets-dir", secrets, "--log-format", "json"}))
	require.NoError(t, m.Open(context.Background()))
	require.NoError(t, m.Close())
	require.Contains(t, log.String(), `BMC secrets without an allowed-hosts file are sent to no BMC`)
	require.Contains(t, log.String(), `"secrets":["bmc-node-01"]`)
	require.NotContains(t, log.String(), "pw-unbound-1")
}
