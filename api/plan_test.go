package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
)

func archive(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		body := make([]byte, h.Size)
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestPlanRefusesUnsafeArchives: paths leaving the repository, links and
// bodies that are not archives are refused, and nothing is planned.
func TestPlanRefusesUnsafeArchives(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	tok := s.Tokens["viewer"]
	cases := map[string][]byte{
		"escaping path":  archive(t, &tar.Header{Name: "../etc/x.yaml", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}),
		"absolute path":  archive(t, &tar.Header{Name: "/etc/x.yaml", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}),
		"symlink":        archive(t, &tar.Header{Name: "x.yaml", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o644}),
		"not an archive": []byte("hello"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			r := do(t, s, http.MethodPost, "/v1/plan", tok, string(body))
			r.apiError(t, http.StatusBadRequest, "invalid")
		})
	}
}

// TestPlansOneAfterAnother: a client that plans one repository after
// another is never refused for lack of a slot: its previous plan gave its
// slot back before the answer reached it. The slot used to be freed only
// after the answer was written and the unpacked files removed, and the
// client (like tink diff) stops reading at the end of the JSON value, so a
// fast client found both slots still held by its own earlier plans.
func TestPlansOneAfterAnother(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	c, err := client.New(s.URL, s.Tokens["viewer"], nil)
	require.NoError(t, err)
	// Enough machines that the answer is larger than the server's write
	// buffer and reaches the client before the handler returns.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := range 40 {
		hw := fmt.Sprintf("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata:\n  name: node-%02d\nspec:\n  interfaces:\n    - dhcp:\n        mac: 52:54:00:10:00:%02x\n", i, i)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("hardware/node-%02d.yaml", i), Typeflag: tar.TypeReg, Size: int64(len(hw)), Mode: 0o644}))
		_, err := tw.Write([]byte(hw))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	for i := range 40 {
		res, err := c.Plan(context.Background(), bytes.NewReader(buf.Bytes()), "")
		require.NoError(t, err, "plan %d", i)
		require.Len(t, res.Changes, 40)
		require.Zero(t, s.API.PlansRunning(), "plan %d answered while still holding its slot", i)
	}
}
