package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
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
