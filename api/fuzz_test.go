package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tinkops/tinkops/api/apitest"
)

// fuzzRoutes are the routes whose request bodies FuzzRequestBodies sends.
var fuzzRoutes = []struct{ method, path, contentType string }{
	{http.MethodPost, "/v1/hardware", "application/yaml"},
	{http.MethodPut, "/v1/hardware/node-01", "application/yaml"},
	{http.MethodPost, "/v1/templates", "application/yaml"},
	{http.MethodPut, "/v1/templates/basic", "application/yaml"},
	{http.MethodPost, "/v1/workflows", "application/yaml"},
	{http.MethodPut, "/v1/workflows/wf", "application/yaml"},
	{http.MethodPost, "/v1/plan", "application/gzip"},
	{http.MethodPost, "/v1/webhooks/git", "application/json"},
}

// FuzzRequestBodies sends arbitrary bodies to every route that decodes
// one: objects created and updated, repositories planned, webhook
// deliveries (signed, so the payload is parsed). Whatever the body, the
// server answers in time, never with a 5xx, and with a JSON error shape
// when it refuses. For plan, mode's high bit sends the body as the content
// of a file in a gzipped tar (what the loader sees) rather than as the
// archive itself (what the unpacker sees). `make fuzz` runs it; `make test`
// runs the seed corpus (here and in testdata/fuzz/FuzzRequestBodies).
func FuzzRequestBodies(f *testing.F) {
	const secret = "fuzz-secret"
	s := apitest.MustRunServer(f, apitest.WithWebhook(secret, func() {}))
	for _, doc := range []string{
		apitest.HardwareYAML("node-01", "52:54:00:00:00:01", "10.0.0.1"),
		apitest.TemplateYAML("basic"),
		apitest.WorkflowYAML("wf", "basic", "node-01", "52:54:00:00:00:01"),
	} {
		for i := range fuzzRoutes {
			f.Add(uint8(i), []byte(doc))
		}
		f.Add(uint8(6|0x80), []byte(doc))
	}
	f.Add(uint8(0), []byte(`{"apiVersion":"tinkerbell.org/v1alpha1","kind":"Hardware","metadata":{"name":"j"},"spec":{}}`))
	f.Add(uint8(2), []byte("version: \"0.1\"\nname: b\ntasks: [{name: t, worker: \"{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}\", actions: []}]\n"))
	f.Add(uint8(7), []byte(`{"ref":"refs/heads/main","after":"abc"}`))
	f.Add(uint8(7), []byte(`{"ref":`))
	f.Add(uint8(6), []byte{0x1f, 0x8b, 0x08, 0x00})

	client := &http.Client{Timeout: 30 * time.Second}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		r := fuzzRoutes[int(mode&0x7f)%len(fuzzRoutes)]
		if r.path == "/v1/plan" && mode&0x80 != 0 {
			body = tarOf(t, "fuzz/object.yaml", body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, r.method, s.URL+r.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", r.contentType)
		if r.path == "/v1/webhooks/git" {
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", sign(secret, body))
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("fuzz-%x", body))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s answered %d: %s", r.method, r.path, resp.StatusCode, b)
		}
		if resp.StatusCode >= 400 {
			var e struct {
				Error *struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s answered %d without the error shape: %s", r.method, r.path, resp.StatusCode, b)
			}
		}
	})
}

// tarOf is a gzipped tar of one file.
func tarOf(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
