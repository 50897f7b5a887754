package worker_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/worker"
	"github.com/tinkops/tinkops/worker/dockertest"
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

// newDocker returns a runtime with a worker id of its own (so parallel tests
// never see each other's containers) and removes what it leaves.
func mustEngine(t *testing.T) *client.Client { return dockertest.MustEngine(t) }

func mustClient(t *testing.T, opts ...client.Opt) *client.Client {
	return dockertest.MustClient(t, opts...)
}

func mustTestImage(t *testing.T, c *client.Client) string { return dockertest.MustBusyboxImage(t, c) }

func newDocker(t *testing.T, c *client.Client) (*worker.Docker, *apitest.Buffer) {
	t.Helper()
	out := &apitest.Buffer{}
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

func randomHex(t *testing.T) string { return dockertest.RandomHex(t) }

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
