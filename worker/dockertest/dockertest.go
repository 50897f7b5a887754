// Package dockertest gives tests a real Docker Engine and an image to run:
// a static busybox built FROM scratch through the Engine API (our machines
// reach no registry). A missing engine or busybox fails the test; it is
// never skipped.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// LabelTest marks what tests create, for cleanup by label.
const LabelTest = "org.tinkops.test"

// MustEngine returns a client of the machine's engine, failing the test
// when there is none.
func MustEngine(t testing.TB) *client.Client {
	t.Helper()
	c := MustClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("the docker runtime is tested against a real Docker Engine (DOCKER_HOST, default /var/run/docker.sock): %v", err)
	}
	return c
}

// MustClient returns a client of DOCKER_HOST (default the local socket).
func MustClient(t testing.TB, opts ...client.Opt) *client.Client {
	t.Helper()
	c, err := client.New(append([]client.Opt{client.FromEnv}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// MustBusyboxImage builds an image FROM scratch holding a static busybox,
// under a tag of its own, and removes it when the test ends.
func MustBusyboxImage(t testing.TB, c *client.Client) string {
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

	tag := "tinkops-test/busybox:" + RandomHex(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{LabelTest: t.Name()}})
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

// RandomHex returns 12 random hex digits, for unique names and tags.
func RandomHex(t testing.TB) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
