package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/worker"
)

// These tests run actions in real containers on the machine's Docker
// Engine. There is no registry, so the test image is built here, FROM
// scratch with a static busybox (Debian's busybox-static). They fail rather
// than skip without an engine: the docker runtime is the one users run.

// labelTest marks what these tests create, for cleanup by label.
const labelTest = "org.tinkops.test"

func TestDocker(t *testing.T) {
	c := mustEngine(t)
	img := mustTestImage(t, c)

	// Tinkerbell runs actions privileged, and so does the runtime by
	// default. Engines that withhold a capability (this machine's runs in
	// a sandbox without CAP_SYS_RESOURCE) cannot start such a container;
	// the action then fails saying what to do. The other tests run
	// unprivileged so that they run on such engines too.
	t.Run("Privileged", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		d.Unprivileged = false
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-priv", Run: 1, Name: "caps", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "grep CapEff /proc/self/status"}})
		if res.State == "SUCCESS" {
			require.True(t, hasSysAdmin(t, res.Message), "privileged: CAP_SYS_ADMIN, which a default container lacks")
		} else {
			require.Equal(t, "FAILED", res.State)
			require.Contains(t, res.Message, "unable to apply caps")
			require.Contains(t, res.Message, "run tink-worker with --privileged=false")
		}
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		d, out := newDocker(t, c)
		dir := t.TempDir()
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-ok", Run: 1, Name: "write", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", `echo "$GREETING $MODE" > /out/greeting; readlink /proc/self/ns/pid > /out/pidns; echo done; sleep 0.2; echo warn >&2`},
			// As the server sends them: task environment merged under the action's.
			Environment: map[string]string{"GREETING": "hello", "MODE": "0644"},
			Volumes:     []string{dir + ":/out"}, Pid: "host"})
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, "done\nwarn\n", res.Message)
		require.Equal(t, "done\nwarn\n", out.String(), "the whole output goes to the worker's log")
		require.False(t, res.Started.IsZero())
		require.False(t, res.Finished.Before(res.Started))
		require.Equal(t, "hello 0644\n", readFile(t, filepath.Join(dir, "greeting")), "a bind volume written by the container is on the host")
		hostNS, err := os.Readlink("/proc/self/ns/pid")
		require.NoError(t, err)
		require.Equal(t, hostNS, strings.TrimSpace(readFile(t, filepath.Join(dir, "pidns"))), "pid: host shares the host's pid namespace")
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("ReadOnlyVolume", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		dir := t.TempDir()
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-ro", Run: 1, Name: "write", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo x > /in/file"}, Volumes: []string{dir + ":/in:ro"}})
		require.Equal(t, "FAILED", res.State)
		require.Contains(t, res.Message, "Read-only file system")
		require.NoFileExists(t, filepath.Join(dir, "file"))
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("ImageCommand", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		// Most Tinkerbell actions (image2disk, writefile) declare no
		// command: the image's own runs, with the action's environment.
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-cmd", Run: 1, Name: "default", Image: img, Timeout: 30,
			Environment: map[string]string{"DEST_DISK": "/dev/sda"}})
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, "image command for /dev/sda\n", res.Message)
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("Failure", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-fail", Run: 1, Name: "fail", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo partitioning >&2; echo oops >&2; exit 3"}})
		require.Equal(t, "FAILED", res.State)
		require.Equal(t, "partitioning\noops\nexit status 3", res.Message)
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("StartFailure", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-start", Run: 1, Name: "missing", Image: img, Timeout: 30,
			Command: []string{"/no/such/program"}})
		require.Equal(t, "FAILED", res.State)
		require.Contains(t, res.Message, "start container:")
		require.Contains(t, res.Message, "/no/such/program")
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		d, _ := newDocker(t, c)
		start := time.Now()
		// sh as pid 1 ignores SIGTERM, so this also takes the SIGKILL
		// that follows StopTimeout.
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-hang", Run: 1, Name: "hang", Image: img, Timeout: 1,
			Command: []string{"/bin/sh", "-c", "echo started; sleep 60"}})
		require.Equal(t, "TIMEOUT", res.State, res.Message)
		require.Less(t, time.Since(start), 8*time.Second)
		require.Equal(t, "started\ntimed out after 1s", res.Message)
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("LargeOutput", func(t *testing.T) {
		t.Parallel()
		d, out := newDocker(t, c)
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-big", Run: 1, Name: "big", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", `head -c 10000 /dev/zero | tr '\0' a; echo END`}})
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Len(t, res.Message, worker.TailSize)
		require.True(t, strings.HasSuffix(res.Message, "aaaEND\n"))
		require.Len(t, out.String(), 10004, "the worker's log has all of it")
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("PullNeverAbsent", func(t *testing.T) {
		t.Parallel()
		rec := &requests{}
		d, _ := newDocker(t, mustClient(t, client.WithHTTPRequestHook(rec.hook)))
		d.Pull = worker.PullNever
		absent := "tinkops-test/absent:" + randomHex(t)
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-never", Run: 1, Name: "absent", Image: absent, Timeout: 30})
		require.Equal(t, "FAILED", res.State)
		require.Equal(t, "image "+absent+" is not on this machine and the pull policy is never: preload it (docker load) or use --pull if-not-present", res.Message)
		require.Zero(t, rec.count("/images/create"), "never means no pull")
		require.Zero(t, rec.count("/containers/create"))
	})

	t.Run("IfNotPresentPresent", func(t *testing.T) {
		t.Parallel()
		rec := &requests{}
		d, _ := newDocker(t, mustClient(t, client.WithHTTPRequestHook(rec.hook)))
		d.Pull = worker.PullIfNotPresent
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-present", Run: 1, Name: "present", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo ran"}})
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Zero(t, rec.count("/images/create"), "a present image is used without touching a registry")
		require.Equal(t, 1, rec.count("/containers/create"))
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("PullFailsAbsent", func(t *testing.T) {
		t.Parallel()
		rec := &requests{}
		d, _ := newDocker(t, mustClient(t, client.WithHTTPRequestHook(rec.hook)))
		// Nothing listens on port 1: the engine's pull fails at once with
		// the registry's (here the connection's) message.
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-pull", Run: 1, Name: "pull", Image: "127.0.0.1:1/tinkops/absent:v1", Timeout: 30})
		require.Equal(t, "FAILED", res.State)
		require.Contains(t, res.Message, "pull image 127.0.0.1:1/tinkops/absent:v1: ")
		require.Contains(t, res.Message, "connection refused")
		require.Equal(t, 1, rec.count("/images/create"))
		require.Zero(t, rec.count("/containers/create"))
	})

	t.Run("PullAlwaysFailsPresent", func(t *testing.T) {
		t.Parallel()
		rec := &requests{}
		d, _ := newDocker(t, mustClient(t, client.WithHTTPRequestHook(rec.hook)))
		d.Pull = worker.PullAlways
		// The pull fails (no registry here); the image is present, so the
		// action runs with it.
		res := d.Run(context.Background(), &worker.Action{Workflow: "wf-always", Run: 1, Name: "always", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo ran"}})
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, 1, rec.count("/images/create"))
		requireNoContainers(t, c, d.Worker)
	})

	// A worker killed mid-action and started again is handed the same
	// attempt; it must wait for the container it started, not run the
	// action a second time.
	t.Run("RestartWhileRunning", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := &worker.Action{Namespace: "ns", Workflow: "wf-restart", Run: 2, Action: 1, Attempt: 1, Name: "count", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo run >> /out/count; echo started; sleep 2; echo finished"},
			Volumes: []string{dir + ":/out"}, Pid: "host"}
		first, _ := newDocker(t, c)
		id := runAndStop(t, c, first, a, false)

		info, err := c.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		require.NoError(t, err)
		require.True(t, info.Container.State.Running, "the container outlives the worker")
		require.Equal(t, container.PidMode("host"), info.Container.HostConfig.PidMode)
		require.Equal(t, map[string]string{worker.LabelWorker: first.Worker, worker.LabelNamespace: "ns", worker.LabelWorkflow: "wf-restart",
			worker.LabelRun: "2", worker.LabelAction: "1", worker.LabelAttempt: "1", worker.LabelActionName: "count"},
			pick(info.Container.Config.Labels, worker.LabelWorker, worker.LabelNamespace, worker.LabelWorkflow, worker.LabelRun,
				worker.LabelAction, worker.LabelAttempt, worker.LabelActionName))

		second, out := newDocker(t, mustClient(t))
		second.Worker = first.Worker
		res := second.Run(context.Background(), a)
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, "started\nfinished\n", res.Message)
		require.Equal(t, "started\nfinished\n", out.String())
		require.Equal(t, "run\n", readFile(t, filepath.Join(dir, "count")), "the action ran once")
		containerStarted, err := time.Parse(time.RFC3339Nano, info.Container.State.StartedAt)
		require.NoError(t, err)
		require.WithinDuration(t, containerStarted, res.Started, time.Millisecond, "started when the container did")
		requireNoContainers(t, c, first.Worker)
	})

	// The same, through the worker loop: a tink-worker process stopped
	// mid-action (its context ends, as on SIGTERM) sends no result; the
	// next one, handed the same attempt as the server does, reports the
	// container's.
	t.Run("WorkerLoopRestart", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := &worker.Action{Workflow: "wf-loop", Run: 1, Attempt: 1, Name: "count", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo run >> /out/count; sleep 2; echo finished"}, Volumes: []string{dir + ":/out"}}
		srv := &fakeServer{actions: []*worker.Action{a}}
		first, _ := newDocker(t, c)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &worker.Worker{ID: first.Worker, Server: srv, Runtime: first, WorkDir: t.TempDir(), Wait: 10 * time.Millisecond}
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		require.Eventually(t, func() bool {
			cs := listContainers(t, c, first.Worker)
			return len(cs) == 1 && cs[0].State == container.StateRunning
		}, 20*time.Second, 20*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		require.Equal(t, []string{"RUNNING"}, srv.states(), "a stopped worker reports no result")

		second, _ := newDocker(t, mustClient(t))
		second.Worker = first.Worker
		srv.mu.Lock()
		srv.actions = append(srv.actions, a)
		srv.mu.Unlock()
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		w2 := &worker.Worker{ID: first.Worker, Server: srv, Runtime: second, WorkDir: w.WorkDir, Wait: 10 * time.Millisecond}
		go func() { done <- w2.Run(ctx2) }()
		require.Eventually(t, func() bool { return len(srv.states()) == 3 }, 20*time.Second, 20*time.Millisecond)
		cancel2()
		require.NoError(t, <-done)
		require.Equal(t, []string{"RUNNING", "RUNNING", "SUCCESS"}, srv.states())
		require.Equal(t, "finished\n", srv.reports[2].Message)
		require.Equal(t, "run\n", readFile(t, filepath.Join(dir, "count")), "the action ran once")
		requireNoContainers(t, c, first.Worker)
	})

	t.Run("RestartAfterExit", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := &worker.Action{Workflow: "wf-exited", Run: 1, Attempt: 1, Name: "count", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo run >> /out/count; echo bye; exit 4"}, Volumes: []string{dir + ":/out"}}
		first, _ := newDocker(t, c)
		runAndStop(t, c, first, a, true)

		second, _ := newDocker(t, mustClient(t))
		second.Worker = first.Worker
		res := second.Run(context.Background(), a)
		require.Equal(t, "FAILED", res.State)
		require.Equal(t, "bye\nexit status 4", res.Message, "the result of the container that ended while no worker watched")
		require.Equal(t, "run\n", readFile(t, filepath.Join(dir, "count")))
		requireNoContainers(t, c, first.Worker)
	})

	t.Run("RestartAfterCreate", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := &worker.Action{Workflow: "wf-created", Run: 3, Action: 2, Attempt: 1, Name: "count", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo run >> /out/count; echo ran"}, Volumes: []string{dir + ":/out"}}
		rec := &requests{}
		d, _ := newDocker(t, mustClient(t, client.WithHTTPRequestHook(rec.hook)))
		// What a worker stopped between create and start leaves behind.
		_, err := c.ContainerCreate(context.Background(), client.ContainerCreateOptions{
			Config: &container.Config{Image: img, Cmd: a.Command, Labels: map[string]string{worker.LabelWorker: d.Worker,
				worker.LabelNamespace: "", worker.LabelWorkflow: "wf-created", worker.LabelRun: "3", worker.LabelAction: "2", worker.LabelAttempt: "1"}},
			HostConfig: &container.HostConfig{Binds: a.Volumes}})
		require.NoError(t, err)
		res := d.Run(context.Background(), a)
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, "ran\n", res.Message)
		require.Equal(t, "run\n", readFile(t, filepath.Join(dir, "count")))
		require.Zero(t, rec.count("/containers/create"), "the container left behind is the one that ran")
		require.Equal(t, 1, rec.count("/start"))
		requireNoContainers(t, c, d.Worker)
	})

	t.Run("NewAttemptRemovesOld", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := &worker.Action{Workflow: "wf-retry", Run: 1, Attempt: 1, Name: "count", Image: img, Timeout: 30,
			Command: []string{"/bin/sh", "-c", "echo run >> /out/count; sleep 60"}, Volumes: []string{dir + ":/out"}}
		first, _ := newDocker(t, c)
		old := runAndStop(t, c, first, a, false)
		// Running is the container's state, not the shell's progress: wait
		// for attempt 1's line so the count below shows both attempts ran.
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, "count"))
			return string(b) == "run\n"
		}, 20*time.Second, 20*time.Millisecond)

		// The server gave up on attempt 1 while the worker was away and
		// hands out attempt 2: the two must never run side by side.
		second, _ := newDocker(t, mustClient(t))
		second.Worker = first.Worker
		retry := *a
		retry.Attempt = 2
		retry.Command = []string{"/bin/sh", "-c", "echo run >> /out/count; echo second"}
		res := second.Run(context.Background(), &retry)
		require.Equal(t, "SUCCESS", res.State, res.Message)
		require.Equal(t, "second\n", res.Message)
		require.Equal(t, "run\nrun\n", readFile(t, filepath.Join(dir, "count")))
		_, err := c.ContainerInspect(context.Background(), old, client.ContainerInspectOptions{})
		require.Error(t, err, "attempt 1's container is gone")
		requireNoContainers(t, c, first.Worker)
	})
}

// TestDockerEngineDown: with no engine at the other end, the action fails
// and says why, promptly.
func TestDockerEngineDown(t *testing.T) {
	d := &worker.Docker{Client: mustClient(t, client.WithHost("unix://"+filepath.Join(t.TempDir(), "docker.sock"))), Worker: "down", CallTimeout: 5 * time.Second}
	res := d.Run(context.Background(), &worker.Action{Workflow: "wf", Run: 1, Name: "a", Image: "busybox", Timeout: 10})
	require.Equal(t, "FAILED", res.State)
	require.Contains(t, res.Message, "failed to connect to the docker API")
}

// TestDockerPullErrorInStream uses a fake engine for the one error path
// this machine's engine cannot produce without a registry: a pull the
// registry refuses after the engine accepted it (the error arrives in the
// progress stream, as "manifest unknown" or "pull access denied" do).
func TestDockerPullErrorInStream(t *testing.T) {
	var created bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/_ping"):
			w.Header().Set("Api-Version", "1.41")
			_, _ = io.WriteString(w, "OK")
		case strings.HasSuffix(p, "/containers/json"):
			_, _ = io.WriteString(w, "[]")
		case strings.Contains(p, "/images/") && strings.HasSuffix(p, "/json"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"No such image"}`)
		case strings.HasSuffix(p, "/images/create"):
			_, _ = io.WriteString(w, `{"status":"Pulling from tinkerbell/image2disk","id":"v1"}`+"\n"+
				`{"errorDetail":{"message":"manifest for quay.io/tinkerbell/image2disk:v1 not found: manifest unknown: manifest unknown"},"error":"manifest unknown"}`+"\n")
		case strings.HasSuffix(p, "/containers/create"):
			created = true
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"unexpected"}`)
		}
	}))
	defer srv.Close()
	d := &worker.Docker{Client: mustClient(t, client.WithHost("tcp://"+srv.Listener.Addr().String())), Worker: "fake"}
	res := d.Run(context.Background(), &worker.Action{Workflow: "wf", Run: 1, Name: "a", Image: "quay.io/tinkerbell/image2disk:v1", Timeout: 10})
	require.Equal(t, "FAILED", res.State)
	require.Equal(t, "pull image quay.io/tinkerbell/image2disk:v1: manifest for quay.io/tinkerbell/image2disk:v1 not found: manifest unknown: manifest unknown", res.Message)
	require.False(t, created)
}

func TestParsePullPolicy(t *testing.T) {
	for in, want := range map[string]worker.PullPolicy{"": worker.PullIfNotPresent, "always": worker.PullAlways,
		"if-not-present": worker.PullIfNotPresent, "never": worker.PullNever} {
		got, err := worker.ParsePullPolicy(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := worker.ParsePullPolicy("IfNotPresent")
	require.EqualError(t, err, `pull policy "IfNotPresent": want always, if-not-present or never`)
}
