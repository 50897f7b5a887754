package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

// screenshotsEnv names the directory TestUIScreenshots writes its
// screenshots to; `make screenshots` sets it to docs/ui. Without it they
// go to a temporary directory, so the normal test run writes nothing into
// the repository.
const screenshotsEnv = "TINK_UI_SCREENSHOTS"

// uiFleet writes the screenshots' fixture fleet: eight machines in two
// racks; node-01 installs successfully, node-02's install fails, node-03's
// is running (its second action waits), node-04's waits for its worker.
func uiFleet(t *testing.T, repo string) {
	t.Helper()
	files := map[string]string{
		"templates/ubuntu-2404.yaml": uiTemplate("ubuntu-2404", 4, "0", func(i int) string {
			return []string{"", "echo wiped /dev/sda", "echo streamed ubuntu-2404.raw.gz to /dev/sda", "echo wrote cloud-init", "echo kexec"}[i]
		}),
		"templates/ubuntu-2404-slow.yaml": uiTemplate("ubuntu-2404-slow", 4, "0", func(i int) string {
			if i == 2 {
				return "sleep 600"
			}
			return fmt.Sprintf("echo step %d", i)
		}),
		"templates/rocky-9.yaml": uiTemplate("rocky-9", 3, "0", func(i int) string {
			if i == 2 {
				return "echo 'image rocky-9.raw.gz: 404 Not Found' >&2; exit 1"
			}
			return fmt.Sprintf("echo step %d", i)
		}),
		"workflows/install-node-01.yaml": uiWorkflow("install-node-01", "ubuntu-2404", "node-01", uiMAC(1)),
		"workflows/install-node-02.yaml": uiWorkflow("install-node-02", "rocky-9", "node-02", uiMAC(2)),
		"workflows/install-node-03.yaml": uiWorkflow("install-node-03", "ubuntu-2404-slow", "node-03", uiMAC(3)),
		"workflows/install-node-04.yaml": uiWorkflow("install-node-04", "ubuntu-2404", "node-04", uiMAC(4)),
	}
	for i := 1; i <= 8; i++ {
		rack, role := "r1", "compute"
		if i > 4 {
			rack = "r2"
		}
		if i%4 == 0 {
			role = "storage"
		}
		files[fmt.Sprintf("hardware/node-%02d.yaml", i)] = uiHardware(fmt.Sprintf("node-%02d", i), i, rack, ", role: "+role)
	}
	writeFiles(t, repo, files)
}

// TestUIScreenshots: the dashboard's pages on the fixture fleet, as an
// operator sees them, each checked for what it must show and saved as a
// PNG (docs/ui under `make screenshots`).
func TestUIScreenshots(t *testing.T) {
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	repo := t.TempDir()
	uiFleet(t, repo)
	m := MustRunMain(t, repo, "--auth-file", writeAuthFile(t))
	waitReady(t, m)
	worker := buildWorker(t)
	for _, hw := range []string{"node-01", "node-02", "node-03"} {
		startWorker(t, worker, m.Addr(), hw, "TINK_TOKEN="+uiTokens["worker-"+hw])
	}
	runState := func(wf string) state.RunState {
		r, err := m.Store.GetRun(t.Context(), state.RunKey{Workflow: wf, Number: 1})
		if err != nil {
			return ""
		}
		return r.State
	}
	require.Eventually(t, func() bool {
		r, err := m.Store.GetRun(t.Context(), state.RunKey{Workflow: "install-node-03", Number: 1})
		return runState("install-node-01") == state.RunSuccess && runState("install-node-02") == state.RunFailed &&
			err == nil && r.CurrentAction == 1 && r.Actions[1].State == state.RunRunning
	}, 60*time.Second, 50*time.Millisecond)

	ctx := newBrowser(t)
	base := "http://" + m.Addr()
	shot := func(name string) {
		t.Helper()
		png := result(t, ctx, chromedp.CaptureScreenshot())
		require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), name)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
	}
	open := func(path, mustShow string) {
		t.Helper()
		browse(t, ctx, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("main")))
		require.Contains(t, textOf(t, ctx, "main"), mustShow, path)
	}

	open("/ui/", "API token")
	shot("signin")
	signIn(t, ctx, base, uiTokens["operator"])

	open("/ui/", "Applied revision")
	shot("overview")
	open("/ui/hardware", "node-08")
	shot("hardware")
	open("/ui/hardware?label=rack%3Dr1", "node-04")
	require.NotContains(t, textOf(t, ctx, "main"), "node-05", "the label filter")
	open("/ui/hardware/node-03", "52:54:00:00:00:03")
	shot("machine")
	open("/ui/workflows", "install-node-04")
	shot("workflows")
	open("/ui/workflows/install-node-03", "RUNNING")
	shot("run")
	open("/ui/workflows/install-node-02", "404 Not Found")
	shot("run-failed")
	browse(t, ctx, chromedp.Click(chromedp.CSS("button[data-action=retry]")), chromedp.WaitVisible(chromedp.CSS("#question")))
	require.Contains(t, textOf(t, ctx, "#question"), "machine node-02")
	shot("confirm")
	open("/ui/events?kind=Workflow", "action-state")
	shot("events")

	// A commit waiting while reconciliation is suspended: the review page
	// shows what applying it would do.
	req, err := http.NewRequest(http.MethodPost, base+"/v1/suspend", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+uiTokens["admin"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	writeFiles(t, repo, map[string]string{
		"hardware/node-09.yaml":          uiHardware("node-09", 9, "r2", ", role: compute"),
		"workflows/install-node-09.yaml": uiWorkflow("install-node-09", "ubuntu-2404", "node-09", uiMAC(9)),
		"workflows/install-node-04.yaml": strings.Replace(uiWorkflow("install-node-04", "ubuntu-2404", "node-04", uiMAC(4)), "}}\n", "}, run: 2}\n", 1),
	})
	require.NoError(t, os.Remove(filepath.Join(repo, "workflows", "install-node-01.yaml")))
	var review string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		browse(t, ctx, chromedp.Navigate(base+"/ui/review"), chromedp.WaitVisible(chromedp.CSS("main")))
		if review = textOf(t, ctx, "main"); strings.Contains(review, "node-09") {
			break
		}
	}
	require.Contains(t, review, "node-09")
	require.Contains(t, textOf(t, ctx, "#consequences"), "node-09")
	shot("review")

	// A broken commit: the overview shows where.
	writeFiles(t, repo, map[string]string{"hardware/node-09.yaml": uiHardware("node-09", 9, "r2", ", role: compute") + "  bootMode: uefi\n"})
	req, err = http.NewRequest(http.MethodPost, base+"/v1/resume", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+uiTokens["admin"])
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		errs := uiStatus(t, m, uiTokens["viewer"])["sync"].(map[string]any)["errors"].([]any)
		return len(errs) > 0
	}, 10*time.Second, 50*time.Millisecond)
	open("/ui/", "hardware/node-09.yaml:")
	shot("overview-rejected")
}
