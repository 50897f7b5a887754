package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/citest"
	"github.com/tinkops/tinkops/state"
)

// The dashboard's tests drive a real headless Chromium (Debian's chromium)
// against a real tink-server and real tink-worker processes.

// chromiumPath finds the browser. Under CI=true a missing browser fails
// the test (.ci/run installs it); elsewhere it skips, saying how to get it.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	citest.Missing(tb, "chromium is not installed: the dashboard tests need a real browser (apt-get install chromium; .ci/run installs it)")
	return ""
}

// newBrowser starts a headless Chromium of its own (its own profile, so
// its own cookies) and returns a tab; the browser is killed at cleanup.
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(tb.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancelTab(); cancelAlloc() })
	require.NoError(tb, chromedp.Do(ctx), "start chromium")
	return ctx
}

// browse runs browser actions with a deadline.
func browse(tb testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(tb, chromedp.Do(ctx, actions...))
}

// result runs one browser action that returns a value, with a deadline.
func result[T any](tb testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(tb, err)
	return v
}

// textOf returns the text of the first element sel matches.
func textOf(tb testing.TB, ctx context.Context, sel string) string {
	tb.Helper()
	return result(tb, ctx, chromedp.Text(chromedp.CSS(sel)))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	return result(tb, ctx, chromedp.Evaluate[T](expr))
}

// uiTokens are the API tokens of the dashboard tests' auth file.
var uiTokens = map[string]string{
	"admin":          "ui-admin-token-0001",
	"operator":       "ui-operator-token-0002",
	"viewer":         "ui-viewer-token-0003",
	"worker-node-01": "ui-worker-node-01-token-0004",
	"worker-node-02": "ui-worker-node-02-token-0005",
	"worker-node-03": "ui-worker-node-03-token-0006",
}

// writeAuthFile writes the tokens file of uiTokens.
func writeAuthFile(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for name, tok := range uiTokens {
		role, hw := name, ""
		if h, ok := strings.CutPrefix(name, "worker-"); ok {
			role, hw = string(api.RoleWorker), h
		}
		fmt.Fprintf(&b, "- {name: %s, role: %s, sha256: %s", name, role, api.HashToken(tok))
		if hw != "" {
			fmt.Fprintf(&b, ", hardware: %s", hw)
		}
		b.WriteString("}\n")
	}
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

// uiMAC is the MAC of fixture machine n.
func uiMAC(n int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", n/256, n%256) }

// uiHardware is fixture machine n.
func uiHardware(name string, n int, rack string, extraLabels string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %s
  labels: {rack: %s%s}
spec:
  disks: [{device: /dev/sda}]
  interfaces:
    - dhcp: {mac: "%s", hostname: %s, ip: {address: 10.0.%d.%d, netmask: 255.255.0.0, gateway: 10.0.0.1}}
      netboot: {allowPXE: true, allowWorkflow: true}
`, name, rack, extraLabels, uiMAC(n), name, n/250, n%250+2)
}

// uiTemplate is a template of n actions; each runs step (a shell command)
// after a pause of pause seconds, so that a browser sees the run advance.
func uiTemplate(name string, n int, pause string, step func(i int) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: \"0.1\"\nname: %s\nglobal_timeout: 600\ntasks:\n  - name: install\n    worker: \"{{.device_1}}\"\n    actions:\n", name)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "      - name: step-%d\n        image: shell:v1\n        timeout: 120\n        command: [\"/bin/sh\", \"-c\", %q]\n", i, "sleep "+pause+"; "+step(i))
	}
	return fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: %s}\nspec:\n  data: |\n%s", name, indent(b.String(), "    "))
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(lines, "\n"+pre) + "\n"
}

func uiWorkflow(name, template, hw, mac string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata: {name: %s}
spec: {templateRef: %s, hardwareRef: %s, hardwareMap: {device_1: "%s"}}
`, name, template, hw, mac)
}

// status reads /v1/status with a token (empty for none).
func uiStatus(t *testing.T, m *Main, token string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+m.Addr()+"/v1/status", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc
}

// oneMachine runs tink-server without tokens on a repository of one
// machine, and a browser; base is the server's URL.
func oneMachine(t *testing.T) (repo string, m *Main, ctx context.Context, base string) {
	t.Helper()
	repo = t.TempDir()
	writeFiles(t, repo, map[string]string{"hardware/node-01.yaml": uiHardware("node-01", 1, "r1", "")})
	m = MustRunMain(t, repo)
	waitReady(t, m)
	return repo, m, newBrowser(t), "http://" + m.Addr()
}

// TestUIOverviewAndBrokenCommit: the overview shows the applied revision;
// after a broken commit it shows the rejected revision's error at its
// file:line, and the applied revision stays.
func TestUIOverviewAndBrokenCommit(t *testing.T) {
	repo, m, ctx, base := oneMachine(t)

	applied := uiStatus(t, m, "")["sync"].(map[string]any)["lastAppliedRevision"].(string)
	require.NotEmpty(t, applied)
	browse(t, ctx, chromedp.Navigate(base+"/ui/"))
	require.Equal(t, applied, strings.TrimSpace(textOf(t, ctx, "#applied")))
	require.Equal(t, "running", strings.TrimSpace(textOf(t, ctx, "#suspended")))

	// Break the file: a field the schema does not know.
	hw := filepath.Join(repo, "hardware", "node-01.yaml")
	orig, err := os.ReadFile(hw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(hw, append(orig, []byte("  bogus: 1\n")...), 0o644))
	var where string
	require.Eventually(t, func() bool {
		errs := uiStatus(t, m, "")["sync"].(map[string]any)["errors"].([]any)
		if len(errs) == 0 {
			return false
		}
		e := errs[0].(map[string]any)
		where = fmt.Sprintf("%s:%v", e["file"], e["line"])
		return true
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, strings.HasPrefix(where, "hardware/node-01.yaml:"), where)
	require.NotEqual(t, "hardware/node-01.yaml:0", where)

	browse(t, ctx, chromedp.Navigate(base+"/ui/"))
	require.Contains(t, textOf(t, ctx, "#sync-errors td.where"), where)
	require.Contains(t, textOf(t, ctx, "#sync-errors"), "bogus")
	require.Equal(t, applied, strings.TrimSpace(textOf(t, ctx, "#applied")), "the applied revision stays")
	require.Contains(t, textOf(t, ctx, "#attempted"), "rejected")
}

// TestUIRunProgressLive: a run's page, opened before its worker starts,
// shows the progress bar and the action list advancing as the worker runs
// the actions, without a reload: the page's state set at load survives.
func TestUIRunProgressLive(t *testing.T) {
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml":  uiHardware("node-01", 1, "r1", ""),
		"templates/install.yaml": uiTemplate("install", 4, "0.8", func(i int) string { return fmt.Sprintf("echo step %d", i) }),
		"workflows/wf-01.yaml":   uiWorkflow("wf-01", "install", "node-01", uiMAC(1)),
	})
	m := MustRunMain(t, repo)
	waitReady(t, m)
	worker := buildWorker(t)
	ctx := newBrowser(t)

	browse(t, ctx, chromedp.Navigate("http://"+m.Addr()+"/ui/workflows/wf-01"))
	require.Contains(t, []string{"PENDING", "RUNNING"}, strings.TrimSpace(textOf(t, ctx, "#run-state")))
	require.Equal(t, 0, eval[int](t, ctx, `+document.querySelector("#run-progress progress").value`))
	eval[string](t, ctx, `window.__loadedOnce = "kept"`)

	startWorker(t, worker, m.Addr(), uiMAC(1))

	// Watch the page (the test polls; the page does not).
	seen := map[int]bool{}
	var running []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		v := eval[int](t, ctx, `(function(){var p=document.querySelector("#run-progress progress"); return p ? +p.value : -1})()`)
		seen[v] = true
		if r := eval[string](t, ctx, `(function(){var li=document.querySelector('#timeline li[data-state="RUNNING"]'); return li ? li.getAttribute("data-action") : ""})()`); r != "" && (len(running) == 0 || running[len(running)-1] != r) {
			running = append(running, r)
		}
		if eval[string](t, ctx, `document.querySelector("#run-state").textContent.trim()`) == "SUCCESS" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, "SUCCESS", strings.TrimSpace(textOf(t, ctx, "#run-state")))
	require.Equal(t, 4, eval[int](t, ctx, `+document.querySelector("#run-progress progress").value`))
	require.Equal(t, "kept", eval[string](t, ctx, `window.__loadedOnce`), "the page was not reloaded")
	between := 0
	for v := 1; v <= 3; v++ {
		if seen[v] {
			between++
		}
	}
	require.GreaterOrEqual(t, between, 2, "the progress bar advanced step by step (values seen: %v)", seen)
	require.GreaterOrEqual(t, len(running), 3, "the action list showed the running action move on: %v", running)
	require.Equal(t, []string{"install/step-1", "install/step-2", "install/step-3", "install/step-4"}[:len(running)], running)
	require.Equal(t, 4, eval[int](t, ctx, `document.querySelectorAll('#timeline li[data-state="SUCCESS"]').length`))
}

// signIn signs the browser in with a token through the sign-in form.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	browse(t, ctx,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#who")),
	)
}

// signOut uses the sign-out button.
func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	browse(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#token")))
}

// postAction forges the dashboard's action request from the page with
// fetch: with the page's CSRF token when csrf is "page", else with csrf as
// given. It returns the status and the answer's text.
func postAction(t *testing.T, ctx context.Context, csrf string, fields map[string]string) (int, string) {
	t.Helper()
	var parts []string
	for k, v := range fields {
		parts = append(parts, fmt.Sprintf("%q: %q", k, v))
	}
	token := fmt.Sprintf("%q", csrf)
	if csrf == "page" {
		token = `document.querySelector('input[name="csrf"]').value`
	}
	expr := fmt.Sprintf(`(async function(){
		var f = new URLSearchParams({%s});
		var t = %s; if (t) { f.set("csrf", t); }
		var r = await fetch("/ui/action", {method: "POST", body: f, redirect: "manual"});
		return [r.status, await r.text()];
	})()`, strings.Join(parts, ", "), token)
	out := result(t, ctx, chromedp.Evaluate[[]any](expr, chromedp.EvalAwaitPromise))
	return int(out[0].(float64)), out[1].(string)
}

// workflowEventsBy counts the workflow's events recorded as actor.
func workflowEventsBy(t *testing.T, m *Main, wf string, actor state.Actor) int {
	t.Helper()
	evs, err := m.Store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Kind: state.KindWorkflow, Name: wf}})
	require.NoError(t, err)
	n := 0
	for _, e := range evs {
		if e.Actor == actor {
			n++
		}
	}
	return n
}

// TestUIRolesRetryAndCSRF: with API tokens, the dashboard asks to sign
// in; a viewer sees no retry button and the server refuses its forged
// retry (403); an operator retries a failed run through the confirmation
// that names the machine; a request without the CSRF token is refused.
func TestUIRolesRetryAndCSRF(t *testing.T) {
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": uiHardware("node-01", 1, "r1", ""),
		"templates/broken.yaml": uiTemplate("broken", 1, "0", func(int) string { return "echo disk not found >&2; exit 1" }),
		"workflows/wf-01.yaml":  uiWorkflow("wf-01", "broken", "node-01", uiMAC(1)),
	})
	m := MustRunMain(t, repo, "--auth-file", writeAuthFile(t))
	waitReady(t, m)
	startWorker(t, buildWorker(t), m.Addr(), "node-01", "TINK_TOKEN="+uiTokens["worker-node-01"])
	ctx := newBrowser(t)
	base := "http://" + m.Addr()
	runKey := state.RunKey{Workflow: "wf-01", Number: 1}
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(context.Background(), runKey)
		return err == nil && r.State == state.RunFailed
	}, 30*time.Second, 50*time.Millisecond)

	// Without a session the dashboard asks for a token; a wrong one is
	// refused.
	browse(t, ctx, chromedp.Navigate(base+"/ui/workflows/wf-01"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")))

	// The viewer: no buttons, and a forged retry gets the API's 403.
	signIn(t, ctx, base, uiTokens["viewer"])
	require.Equal(t, "viewer (viewer)", textOf(t, ctx, "#who"))
	browse(t, ctx, chromedp.Navigate(base+"/ui/workflows/wf-01"))
	require.Equal(t, "FAILED", strings.TrimSpace(textOf(t, ctx, "#run-state")))
	require.Equal(t, 0, eval[int](t, ctx, `document.querySelectorAll("[data-action=retry], [data-action=retry-start], form[action='/ui/action']").length`))
	browse(t, ctx, chromedp.Navigate(base+"/ui/"))
	require.Equal(t, 0, eval[int](t, ctx, `document.querySelectorAll("[data-action]").length`), "a viewer sees no action")
	browse(t, ctx, chromedp.Navigate(base+"/ui/confirm?do=retry&name=wf-01"))
	require.Contains(t, textOf(t, ctx, "#error-message"), "viewer has role viewer, which may not retry")
	browse(t, ctx, chromedp.Navigate(base+"/ui/workflows/wf-01"))
	status, body := postAction(t, ctx, "page", map[string]string{"do": "retry", "name": "wf-01"})
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, body, "token viewer has role viewer")
	require.Zero(t, workflowEventsBy(t, m, "wf-01", state.APIUser("viewer")))
	signOut(t, ctx)

	// The operator.
	signIn(t, ctx, base, uiTokens["operator"])
	browse(t, ctx, chromedp.Navigate(base+"/ui/workflows/wf-01"))

	// The CSRF check: no token, or a wrong one, is refused and changes
	// nothing.
	for _, csrf := range []string{"", "forged-token"} {
		status, body = postAction(t, ctx, csrf, map[string]string{"do": "retry", "name": "wf-01"})
		require.Equal(t, http.StatusForbidden, status, "csrf %q", csrf)
		require.Contains(t, body, "CSRF token is missing or wrong")
	}
	require.Zero(t, workflowEventsBy(t, m, "wf-01", state.APIUser("operator")))

	// Retry through the button and its confirmation.
	browse(t, ctx, chromedp.Click(chromedp.CSS("button[data-action=retry]")), chromedp.WaitVisible(chromedp.CSS("#question")))
	require.Equal(t, "Retry workflow wf-01 on machine node-01 from the action that failed?", textOf(t, ctx, "#question"))
	browse(t, ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS(".done")))
	loc := result(t, ctx, chromedp.Location())
	u, err := url.Parse(loc)
	require.NoError(t, err)
	require.Equal(t, "/ui/workflows/wf-01", u.Path)
	require.Positive(t, workflowEventsBy(t, m, "wf-01", state.APIUser("operator")), "the retry is recorded as the operator's")
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(context.Background(), runKey)
		return err == nil && r.Actions[0].Attempt >= 2
	}, 30*time.Second, 50*time.Millisecond, "the worker ran the failed action again")

	// A request from a page of another origin is refused before the CSRF
	// token is looked at.
	req, err := http.NewRequest(http.MethodPost, base+"/ui/action", strings.NewReader("do=sync"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(&http.Cookie{Name: "tink_session", Value: uiTokens["operator"]})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestUIEscapesLabels: a label value holding a script shows as text on
// the hardware list and page; no script of it runs.
func TestUIEscapesLabels(t *testing.T) {
	repo := t.TempDir()
	evil := `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`
	writeFiles(t, repo, map[string]string{
		"hardware/node-01.yaml": uiHardware("node-01", 1, "r1", fmt.Sprintf(", note: %q", evil)),
	})
	m := MustRunMain(t, repo)
	waitReady(t, m)
	ctx := newBrowser(t)
	base := "http://" + m.Addr()
	for _, page := range []string{"/ui/hardware", "/ui/hardware/node-01", "/ui/hardware?q=node"} {
		browse(t, ctx, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS(".labels")))
		require.Contains(t, textOf(t, ctx, ".labels"), "note="+evil, page)
		require.Equal(t, "undefined", eval[string](t, ctx, `typeof window.__pwned`), page)
		require.Equal(t, 1, eval[int](t, ctx, `document.scripts.length`), "%s: only the dashboard's own script", page)
	}
}

// TestUILiveStreamsFreeTheirConnections: a page's event stream closes when
// the browser leaves the page (even into its back/forward cache), so
// going from live page to live page never runs out of the six connections
// a browser opens to a plain-HTTP server.
func TestUILiveStreamsFreeTheirConnections(t *testing.T) {
	_, _, ctx, base := oneMachine(t)
	for i := 0; i < 5; i++ {
		for _, page := range []string{"/ui/hardware", "/ui/events"} {
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := chromedp.Do(tctx, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS("main table")), chromedp.Navigate("about:blank"))
			cancel()
			require.NoError(t, err, "visit %d of %s", i+1, page)
		}
	}
}
