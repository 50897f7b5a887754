package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/worker/dockertest"
)

// TestImage: `make image` builds the tinkops image on this machine (no
// registry), the Engine runs it, /readyz answers on the mapped port, the
// CLI lists the example hardware through it; container and image are
// removed.
func TestImage(t *testing.T) {
	engine := dockertest.MustEngine(t)
	tag := "tinkops-test/tinkops:" + dockertest.RandomHex(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	build := exec.Command("make", "image", "IMAGE="+tag)
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "make image: %s", out)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := engine.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		require.NoError(t, err)
	})

	run := exec.Command("docker", "run", "-d", "--label", dockertest.LabelTest+"="+t.Name(), "-p", "127.0.0.1::42113", tag)
	out, err = run.CombinedOutput()
	require.NoError(t, err, "docker run: %s", out)
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		require.NoError(t, err)
	})
	info, err := engine.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, "65532:65532", info.Container.Config.User, "not root")
	portOut, err := exec.Command("docker", "port", id, "42113").CombinedOutput()
	require.NoError(t, err, "%s", portOut)
	addr := strings.TrimSpace(strings.Split(string(portOut), "\n")[0])
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)

	tink := filepath.Join(t.TempDir(), "tink")
	out, err = exec.Command("go", "build", "-o", tink, "../tink").CombinedOutput()
	require.NoError(t, err, "%s", out)
	list := exec.Command(tink, "hardware", "list", "--server", "http://"+addr)
	list.Env = append(os.Environ(), "TINK_TOKEN=")
	out, err = list.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, hw := range []string{"node-01", "node-02", "node-03"} {
		require.Contains(t, string(out), hw)
	}
}
