package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// seedCLI pushes two machines and the template basic with the CLI.
func seedCLI(t *testing.T, s *apitest.Server) {
	t.Helper()
	hw := writeFile(t, "hw.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11")+"---\n"+apitest.HardwareYAML("node-02", "52:54:00:10:00:02", "10.10.1.12"))
	code, _, errOut := tinkAt(t, s, "hardware", "push", "--file", hw)
	require.Equal(t, 0, code, errOut)
	tmpl := writeFile(t, "basic.yaml", apitest.TemplateYAML("basic"))
	code, out, errOut := tinkAt(t, s, "template", "create", "--file", tmpl)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "template/basic created\n", out)
}

func TestTemplateCommands(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedCLI(t, s)

	crd := writeFile(t, "crd.yaml", "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: crd}\nspec:\n  data: |\n    version: \"0.1\"\n    name: crd\n    tasks:\n      - name: t\n        worker: \"{{.device_1}}\"\n        actions:\n          - {name: a, image: alpine, timeout: 5}\n")
	code, out, errOut := tinkAt(t, s, "template", "create", "--file", crd)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "template/crd created\n", out)

	code, _, errOut = tinkAt(t, s, "template", "create", "--file", crd)
	require.Equal(t, 1, code)
	require.Equal(t, "tink: template/crd: exists already; change it with tink template update --file "+crd+"\n", errOut)

	// update --file changes it; a template that does not exist is not
	// created by update.
	crd2 := writeFile(t, "crd2.yaml", strings.Replace(readFile(t, crd), "timeout: 5", "timeout: 9", 1))
	code, out, errOut = tinkAt(t, s, "template", "update", "--file", crd2)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "template/crd updated\n", out)
	code, out, _ = tinkAt(t, s, "template", "update", "--file", crd2)
	require.Equal(t, 0, code)
	require.Equal(t, "template/crd unchanged\n", out)
	other := writeFile(t, "other.yaml", strings.ReplaceAll(readFile(t, crd), "crd", "other"))
	code, _, errOut = tinkAt(t, s, "template", "update", "--file", other)
	require.Equal(t, 1, code)
	require.Equal(t, "tink: template/other: does not exist; create it with tink template create --file "+other+"\n", errOut)

	// A Git-managed template changes only with --force.
	s.PutGit(t, "templates/gitty.yaml", strings.ReplaceAll(readFile(t, crd), "crd", "gitty"))
	gitty := writeFile(t, "gitty.yaml", strings.ReplaceAll(readFile(t, crd2), "crd", "gitty"))
	code, _, errOut = tinkAt(t, s, "template", "update", "--file", gitty)
	require.Equal(t, 1, code)
	require.Regexp(t, `^tink: template/gitty: managed by Git \(templates/gitty.yaml at main@sha1:[0-9a-f]+\): change it there, or run again with --force \(and --reason\) to override Git until Git changes it again\n$`, errOut)
	code, out, errOut = tinkAt(t, s, "template", "update", "--file", gitty, "--force", "--reason", "hotfix")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "template/gitty updated\n", out)

	code, out, _ = tinkAt(t, s, "template", "list")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	require.Regexp(t, `^NAME\s+SOURCE\s+REVISION\s+UPDATED$`, lines[0])
	require.Regexp(t, `^basic\s+api\s+-\s+\d+s$`, lines[1])
	require.Regexp(t, `^gitty\s+git \(overridden\)\s+main@sha1:`, lines[3])

	code, out, _ = tinkAt(t, s, "template", "get", "basic", "-o", "yaml")
	require.Equal(t, 0, code)
	require.Contains(t, out, "kind: Template\n")
	require.Contains(t, out, "worker: \"{{.device_1}}\"")

	code, out, _ = tinkAt(t, s, "template", "list", "-o", "json")
	require.Equal(t, 0, code)
	var list client.List
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Items, 3)

	code, out, _ = tinkAt(t, s, "template", "delete", "crd")
	require.Equal(t, 0, code)
	require.Equal(t, "template/crd deleted\n", out)

	// The render command still works alongside.
	code, _, _ = runTink(t, "template", "render", "--help")
	require.Equal(t, 0, code)
}

func TestWorkflowCommands(t *testing.T) {
	s := apitest.MustRunServer(t)
	seedCLI(t, s)

	code, out, errOut := tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-01")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^workflow/node-01-basic-[a-z0-9]{5} created: run 1 PENDING\n$`, out)

	code, out, errOut = tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-02", "--name", "wf-02", "--map", "device_1=52:54:00:10:00:02", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var created client.Object
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.JSONEq(t, `{"templateRef":"basic","hardwareRef":"node-02","hardwareMap":{"device_1":"52:54:00:10:00:02"}}`, string(created.Spec))

	code, _, errOut = tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-02", "--map", "device_1=52:54:00:10:00:01")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "cannot run: 1 problem\n  spec.hardwareMap.device_1: 52:54:00:10:00:01 is a MAC address of hardware node-01, not of node-02")

	s.UpdateRun(t, "wf-02", state.Worker("node-02"), func(r *state.WorkflowRun) {
		r.State = state.RunRunning
		r.Actions = apitest.Actions("52:54:00:10:00:02", "wipe-disk", "install-os")
		r.Actions[0].State, r.Actions[0].Attempt = state.RunSuccess, 1
		r.Actions[0].StartedAt, r.Actions[0].FinishedAt = time.Now().Add(-time.Minute), time.Now().Add(-50*time.Second)
		r.Actions[1].State, r.Actions[1].Attempt, r.Actions[1].StartedAt = state.RunRunning, 1, time.Now().Add(-20*time.Second)
		r.CurrentAction = 1
	})

	t.Run("List", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "workflow", "list")
		require.Equal(t, 0, code)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3)
		require.Regexp(t, `^NAME\s+TEMPLATE\s+HARDWARE\s+RUN\s+STATE\s+PROGRESS\s+SOURCE$`, lines[0])
		require.Regexp(t, `^node-01-basic-\w{5}\s+basic\s+node-01\s+1\s+PENDING\s+-\s+api$`, lines[1])
		require.Regexp(t, `^wf-02\s+basic\s+node-02\s+1\s+RUNNING\s+1/2\s+api$`, lines[2])

		code, out, _ = tinkAt(t, s, "hardware", "list")
		require.Equal(t, 0, code)
		require.Regexp(t, `node-02\s+52:54:00:10:00:02\s+10.10.1.12\s+node-02\s+api\s+RUNNING \(wf-02#1\)`, out)
	})

	t.Run("Get", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "workflow", "get", "wf-02")
		require.Equal(t, 0, code)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^Name:\s+wf-02$`),
			regexp.MustCompile(`(?m)^State:\s+RUNNING$`),
			regexp.MustCompile(`(?m)^Action:\s+provision/install-os, running for 2\ds$`),
			regexp.MustCompile(`(?m)^Progress:\s+1 of 2 actions done$`),
			regexp.MustCompile(`(?m)^TASK\s+ACTION\s+STATE\s+ATTEMPT\s+DURATION\s+MESSAGE$`),
			regexp.MustCompile(`(?m)^provision\s+wipe-disk\s+SUCCESS\s+1\s+10s\s+-$`),
		} {
			require.Regexp(t, want, out)
		}
		code, out, _ = tinkAt(t, s, "workflow", "get", "wf-02", "-o", "json")
		require.Equal(t, 0, code)
		var o client.Object
		require.NoError(t, json.Unmarshal([]byte(out), &o))
		require.Equal(t, "RUNNING", o.Status.Run.State)
	})

	t.Run("Events", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "workflow", "events", "wf-02")
		require.Equal(t, 0, code)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 5)
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\S+Z\s+\d+\s+created\s+Workflow/wf-02 created through the API by anonymous\s+\[api:anonymous\]$`, lines[0])
		require.Contains(t, lines[2], "run-state     Workflow/wf-02#1: PENDING -> RUNNING")

		code, out, _ = tinkAt(t, s, "workflow", "events", "wf-02", "-o", "json", "--since", "0")
		require.Equal(t, 0, code)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev state.Event
			require.NoError(t, json.Unmarshal([]byte(l), &ev))
			require.Equal(t, "wf-02", ev.Name)
		}
	})

	t.Run("CancelAndRetry", func(t *testing.T) {
		code, out, _ := tinkAt(t, s, "workflow", "cancel", "wf-02")
		require.Equal(t, 0, code)
		require.Equal(t, "workflow/wf-02: run 1 CANCELLED (cancelled by api:anonymous)\n", out)
		code, _, errOut := tinkAt(t, s, "workflow", "cancel", "wf-02")
		require.Equal(t, 1, code)
		require.Equal(t, "tink: run 1 of workflow wf-02 has already ended (CANCELLED)\n", errOut)
		code, out, _ = tinkAt(t, s, "workflow", "retry", "wf-02", "--from-start", "-o", "json")
		require.Equal(t, 0, code)
		var run client.Run
		require.NoError(t, json.Unmarshal([]byte(out), &run))
		require.Equal(t, "PENDING", run.State)
		require.Equal(t, "PENDING", run.Actions[0].State, "from the start")
		code, _, errOut = tinkAt(t, s, "workflow", "retry", "nope")
		require.Equal(t, 1, code)
		require.Equal(t, "tink: workflow nope not found\n", errOut)
	})

	t.Run("Delete", func(t *testing.T) {
		code, _, errOut := tinkAt(t, s, "workflow", "delete", "wf-02")
		require.Equal(t, 1, code)
		require.Equal(t, "tink: workflow wf-02 has run 1 PENDING; cancel it first (tink workflow cancel wf-02)\n", errOut)
		code, _, _ = tinkAt(t, s, "workflow", "cancel", "wf-02")
		require.Equal(t, 0, code)
		code, out, _ := tinkAt(t, s, "wf", "delete", "wf-02")
		require.Equal(t, 0, code)
		require.Equal(t, "workflow/wf-02 deleted\n", out)
	})
}

// syncBuffer is a bytes.Buffer a test can read while a command writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// followInBackground runs tink workflow events --follow and returns its
// output buffers and a channel with its exit code.
func followInBackground(t *testing.T, s *apitest.Server, args ...string) (*syncBuffer, *syncBuffer, chan int) {
	t.Helper()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go func() {
		done <- run(ctx, append([]string{"--server", s.URL, "workflow", "events", "--follow"}, args...), strings.NewReader(""), &out, &errOut)
	}()
	return &out, &errOut, done
}

// driveRun takes wf-01's run through its actions to final.
func driveRun(t *testing.T, s *apitest.Server, final state.RunState) {
	t.Helper()
	s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) {
		r.State = state.RunRunning
		r.StartedAt = time.Now()
		r.Actions = apitest.Actions("52:54:00:10:00:01", "wipe-disk", "install-os")
	})
	for i := range 2 {
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[i].State, r.Actions[i].Attempt, r.Actions[i].StartedAt = state.RunRunning, 1, time.Now()
			r.CurrentAction = i
		})
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[i].State, r.Actions[i].FinishedAt = state.RunSuccess, time.Now()
			r.CurrentAction = i + 1
			if i == 1 {
				if final != state.RunSuccess {
					r.Actions[i].State, r.Actions[i].Message = final, "exit status 3"
					r.CurrentAction = i
				}
				r.State = final
			}
		})
	}
}

func TestWorkflowEventsFollow(t *testing.T) {
	t.Run("Piped", func(t *testing.T) {
		s := apitest.MustRunServer(t)
		seedCLI(t, s)
		code, _, errOut := tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-01", "--name", "wf-01")
		require.Equal(t, 0, code, errOut)
		out, _, done := followInBackground(t, s, "wf-01")
		require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") >= 2 }, 5*time.Second, 5*time.Millisecond)
		driveRun(t, s, state.RunSuccess)
		require.Equal(t, 0, <-done)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.Len(t, lines, 2+1+4+1+1, "created, run 1, RUNNING, four action transitions, SUCCESS, the end line")
		require.Contains(t, lines[len(lines)-3], "Workflow/wf-01#1: RUNNING -> SUCCESS")
		require.Contains(t, lines[len(lines)-2], "action provision/install-os: SUCCESS", "the run's last write is shown whole")
		require.Equal(t, "workflow wf-01 run 1 ended: SUCCESS", lines[len(lines)-1])
	})

	t.Run("PipedJSON", func(t *testing.T) {
		s := apitest.MustRunServer(t)
		seedCLI(t, s)
		code, _, _ := tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-01", "--name", "wf-01")
		require.Equal(t, 0, code)
		driveRun(t, s, state.RunFailed)
		code, out, _ := tinkAt(t, s, "workflow", "events", "wf-01", "--follow", "-o", "json")
		require.Equal(t, 1, code, "a failed run exits 1")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var end client.StreamEnd
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &end))
		require.Equal(t, client.StreamEnd{Workflow: "wf-01", Run: 1, State: "FAILED"}, end)
		for _, l := range lines[:len(lines)-1] {
			var ev state.Event
			require.NoError(t, json.Unmarshal([]byte(l), &ev))
			require.NotZero(t, ev.Seq)
		}
	})

	t.Run("Progress", func(t *testing.T) {
		s := apitest.MustRunServer(t)
		seedCLI(t, s)
		code, _, _ := tinkAt(t, s, "workflow", "create", "--template", "basic", "--hardware", "node-01", "--name", "wf-01")
		require.Equal(t, 0, code)
		out, _, done := followInBackground(t, s, "wf-01", "--progress")
		waitFor := func(want string) {
			t.Helper()
			require.Eventually(t, func() bool { return strings.Contains(out.String(), want) }, 5*time.Second, 5*time.Millisecond, want)
		}
		waitFor("\r\033[K[0/0] run 1 PENDING")
		s.UpdateRun(t, "wf-01", state.ActorReconciler, func(r *state.WorkflowRun) {
			r.State = state.RunRunning
			r.Actions = apitest.Actions("52:54:00:10:00:01", "wipe-disk", "install-os")
		})
		waitFor("\r\033[K[0/2] run 1 RUNNING  provision/wipe-disk")
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[0].State, r.Actions[0].Attempt, r.Actions[0].StartedAt = state.RunRunning, 1, time.Now().Add(-3*time.Second)
		})
		waitFor("\r\033[K[0/2] run 1 RUNNING  provision/wipe-disk 3s")
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[0].State, r.Actions[0].FinishedAt = state.RunSuccess, time.Now()
			r.Actions[1].State, r.Actions[1].Attempt, r.Actions[1].StartedAt = state.RunRunning, 1, time.Now()
			r.CurrentAction = 1
		})
		waitFor("s\n\r\033[K[1/2] run 1 RUNNING  provision/install-os ")
		s.UpdateRun(t, "wf-01", state.Worker("node-01"), func(r *state.WorkflowRun) {
			r.Actions[1].State, r.Actions[1].FinishedAt, r.Actions[1].Message = state.RunFailed, r.Actions[1].StartedAt, "exit status 3"
			r.State = state.RunFailed
		})
		require.Equal(t, 1, <-done, "a failed run exits 1")
		text := out.String()
		require.Equal(t, 1, strings.Count(text, "✓ provision/wipe-disk SUCCESS"), "each finished action once")
		require.Regexp(t, `\r\033\[K✓ provision/wipe-disk SUCCESS in [34]s\n`, text)
		require.Equal(t, 1, strings.Count(text, "✗ provision/install-os FAILED in 0s: exit status 3\n"))
		require.Regexp(t, `\r\033\[Kworkflow wf-01 run 1: FAILED \(1 of 2 actions done, followed for \d+s\)\n$`, text)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := apitest.MustRunServer(t)
		code, _, errOut := tinkAt(t, s, "workflow", "events", "nope", "--follow")
		require.Equal(t, 1, code)
		require.Equal(t, "tink: workflow nope not found\n", errOut)
	})
}
