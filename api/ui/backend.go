package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/tinkops/tinkops/api/client"
)

// apiCall is one request the dashboard makes to the API on behalf of a
// browser request: it runs in process through the API's own handler, so the
// route table, the role checks, the error codes and the request log are the
// REST API's, not a copy of them.
type apiCall struct {
	method string
	path   string
	query  url.Values
	body   io.Reader
	// contentType of body, when there is one.
	contentType string
}

// memWriter collects a response of the API in memory.
type memWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (m *memWriter) Header() http.Header { return m.h }

func (m *memWriter) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}

func (m *memWriter) Write(b []byte) (int, error) {
	if m.code == 0 {
		m.code = http.StatusOK
	}
	return m.buf.Write(b)
}

// request builds the API request for c: the browser request's context
// (its deadline, and the listener address the API's loopback guard
// checks), Host and remote address, and the session's token.
func (u *UI) request(r *http.Request, s *session, c apiCall) (*http.Request, error) {
	target := c.path
	if len(c.query) > 0 {
		target += "?" + c.query.Encode()
	}
	body := c.body
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(r.Context(), c.method, "http://"+r.Host+target, body)
	if err != nil {
		return nil, fmt.Errorf("build API request %s %s: %w", c.method, c.path, err)
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if s != nil && s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	return req, nil
}

// do runs c and decodes its JSON answer into out (nil discards it). An
// error answer comes back as the API's *client.Error with its status.
func (u *UI) do(r *http.Request, s *session, c apiCall, out any) error {
	req, err := u.request(r, s, c)
	if err != nil {
		return err
	}
	mw := &memWriter{h: http.Header{}}
	u.api.ServeHTTP(mw, req)
	if mw.code == 0 {
		mw.code = http.StatusOK
	}
	if mw.code >= 400 {
		var eb client.ErrorBody
		if err := json.Unmarshal(mw.buf.Bytes(), &eb); err != nil || eb.Error == nil {
			return &client.Error{StatusCode: mw.code, Code: "internal", Message: http.StatusText(mw.code)}
		}
		eb.Error.StatusCode = mw.code
		return eb.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(mw.buf.Bytes(), out); err != nil {
		return fmt.Errorf("decode API answer to %s %s: %w", c.method, c.path, err)
	}
	return nil
}

// get is do for a GET.
func (u *UI) get(r *http.Request, s *session, path string, q url.Values, out any) error {
	return u.do(r, s, apiCall{method: http.MethodGet, path: path, query: q}, out)
}

// stream relays an API event stream to the browser as it comes: the API
// writes straight to the browser's connection (flushes included).
func (u *UI) stream(w http.ResponseWriter, r *http.Request, s *session, path string, q url.Values) {
	req, err := u.request(r, s, apiCall{method: http.MethodGet, path: path, query: q})
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.api.ServeHTTP(w, req)
}
