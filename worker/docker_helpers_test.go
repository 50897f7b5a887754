package worker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/worker"
)

// Helpers of the docker runtime's tests: the engine, the test image, and
// what the tests inspect.

// runAndStop runs a with d until its container runs (or, with exited, has
// run to its end), then stops the worker as a kill would, and returns the
// container's id.
func runAndStop(t *testing.T, c *client.Client, d *worker.Docker, a *worker.Action, exited bool) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan worker.Result, 1)
	go func() { done <- d.Run(ctx, a) }()
	var id string
	require.Eventually(t, func() bool {
		res, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: client.Filters{}.Add("label", worker.LabelWorker+"="+d.Worker)})
		if err != nil || len(res.Items) != 1 || res.Items[0].State != container.StateRunning {
			return false
		}
		id = res.Items[0].ID
		return true
	}, 20*time.Second, 20*time.Millisecond)
	if exited {
		// Stop the worker first, then let the action end with no worker
		// watching.
		cancel()
		<-done
		require.Eventually(t, func() bool {
			info, err := c.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
			return err == nil && info.Container.State.Status == container.StateExited
		}, 20*time.Second, 20*time.Millisecond)
		return id
	}
	cancel()
	res := <-done
	require.Equal(t, "FAILED", res.State)
	require.Contains(t, res.Message, "goes on for the next worker")
	return id
}

// mustEngine returns a client of the machine's engine, failing the test
// when there is none.
func mustEngine(t *testing.T) *client.Client {
	t.Helper()
	c := mustClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("the docker runtime is tested against a real Docker Engine (DOCKER_HOST, default /var/run/docker.sock): %v", err)
	}
	return c
}

func mustClient(t *testing.T, opts ...client.Opt) *client.Client {
	t.Helper()
	c, err := client.New(append([]client.Opt{client.FromEnv}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mustTestImage builds an image FROM scratch holding a static busybox,
// under a tag of its own, and removes it when the test ends.
func mustTestImage(t *testing.T, c *client.Client) string {
	t.Helper()
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		if busybox, err = exec.LookPath("busybox"); err != nil {
			t.Fatal("the docker tests build their image from a static busybox: apt-get install busybox-static")
		}
	}
	bin, err := os.ReadFile(busybox)
	require.NoError(t, err)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	add(&tar.Header{Name: "Dockerfile", Mode: 0o644}, []byte(`FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["/bin/sh", "-c", "echo image command for $DEST_DISK"]
`))
	add(&tar.Header{Name: "rootfs/bin/busybox", Mode: 0o755}, bin)
	for _, applet := range []string{"sh", "cat", "echo", "grep", "head", "readlink", "sleep", "tr"} {
		add(&tar.Header{Name: "rootfs/bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	require.NoError(t, tw.Close())

	tag := "tinkops-test/busybox:" + randomHex(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{labelTest: "worker"}})
	require.NoError(t, err)
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		if m.Error != nil {
			t.Fatalf("build test image: %s", m.Error.Message)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		require.NoError(t, err)
	})
	return tag
}

// newDocker returns a runtime with a worker id of its own (so parallel tests
// never see each other's containers) and removes what it leaves.
func newDocker(t *testing.T, c *client.Client) (*worker.Docker, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	d := &worker.Docker{Client: c, Worker: "test-" + randomHex(t), Output: out, Unprivileged: true, StopTimeout: time.Second, CallTimeout: 20 * time.Second}
	t.Cleanup(func() { removeContainers(t, c, d.Worker) })
	return d, out
}

func listContainers(t *testing.T, c *client.Client, workerID string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", worker.LabelWorker+"="+workerID)})
	require.NoError(t, err)
	return res.Items
}

func requireNoContainers(t *testing.T, c *client.Client, workerID string) {
	t.Helper()
	require.Empty(t, listContainers(t, c, workerID), "containers left behind")
}

func removeContainers(t *testing.T, c *client.Client, workerID string) {
	for _, ct := range listContainers(t, c, workerID) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, _ = c.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true})
		cancel()
	}
}

// requests counts the engine API calls a client makes, by path suffix.
type requests struct {
	mu    sync.Mutex
	paths []string
}

func (r *requests) hook(req *http.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths = append(r.paths, req.Method+" "+req.URL.Path)
	return nil
}

func (r *requests) count(suffix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.paths {
		if strings.HasSuffix(p, suffix) {
			n++
		}
	}
	return n
}

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

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// hasSysAdmin reads a CapEff line of /proc/self/status.
func hasSysAdmin(t *testing.T, line string) bool {
	t.Helper()
	f := strings.Fields(line)
	require.Len(t, f, 2, line)
	caps, err := strconv.ParseUint(f[1], 16, 64)
	require.NoError(t, err)
	const capSysAdmin = 21
	return caps&(1<<capSysAdmin) != 0
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
