// Package client is the Go client of the tinkops API and the definition of
// the API's wire types, which the server (package api), the tink CLI and the
// worker share. It imports nothing heavier than package state, so programs
// that only talk to the API carry neither the server nor the schema.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tinkops/tinkops/state"
)

// DefaultServer is where tink-server listens unless told otherwise.
const DefaultServer = "http://127.0.0.1:42113"

// maxResponse bounds a response body the client reads (lists of a large
// fleet are tens of MiB; anything beyond this is a mistake).
const maxResponse = 256 << 20

// Client talks to one tink-server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client for the server at baseURL (http:// or https://),
// authenticating with token (empty: no Authorization header). hc nil means
// a client without timeouts, since event streams last as long as a run;
// bound each call with its context.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host:port", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// BaseURL returns the server's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// ListOptions selects a page of a collection.
type ListOptions struct {
	// Namespace restricts the list to one namespace; empty lists all.
	Namespace string
	// LabelSelector filters by label, in Kubernetes' syntax (rack=r1,!spare).
	LabelSelector string
	// Limit caps the page size; 0 takes the server's default.
	Limit int
	// Continue is the previous page's Metadata.Continue.
	Continue string
}

// WriteOptions modify a create or update.
type WriteOptions struct {
	// Force allows changing a Git-managed object; the change is recorded
	// as an override and shown as drift until Git changes the object.
	Force bool
	// Reason is recorded with the override.
	Reason string
}

// DeleteOptions modify a deletion.
type DeleteOptions struct {
	Force  bool
	Reason string
	// ResourceVersion, when set, deletes only that version (409 otherwise).
	ResourceVersion string
}

// EventOptions select events.
type EventOptions struct {
	// Since returns events with a sequence number above it; nil means from
	// the oldest retained event (for a follow of all events: from now).
	Since *uint64
	// Limit caps the page; 0 takes the server's default (1000).
	Limit int
	// Kind, Namespace and Name restrict the events to one object (or
	// kind); Types to some event types.
	Kind, Namespace, Name string
	Types                 []state.EventType
}

func (o EventOptions) query() url.Values {
	q := url.Values{}
	if o.Since != nil {
		q.Set("since", strconv.FormatUint(*o.Since, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	setIf(q, "kind", o.Kind)
	setIf(q, "namespace", o.Namespace)
	setIf(q, "name", o.Name)
	for _, t := range o.Types {
		q.Add("type", string(t))
	}
	return q
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// List returns one page of a collection.
func (c *Client) List(ctx context.Context, res Resource, opts ListOptions) (*List, error) {
	q := url.Values{}
	setIf(q, "namespace", opts.Namespace)
	setIf(q, "labelSelector", opts.LabelSelector)
	setIf(q, "continue", opts.Continue)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out List
	if err := c.do(ctx, http.MethodGet, "/v1/"+string(res), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAll returns every object of a collection that opts select, page by page.
func (c *Client) ListAll(ctx context.Context, res Resource, opts ListOptions) ([]Object, error) {
	var all []Object
	for {
		page, err := c.List(ctx, res, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Metadata.Continue == "" {
			return all, nil
		}
		opts.Continue = page.Metadata.Continue
	}
}

// Get returns one object.
func (c *Client) Get(ctx context.Context, res Resource, namespace, name string) (*Object, error) {
	var out Object
	if err := c.do(ctx, http.MethodGet, objectPath(res, name), nsQuery(namespace), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Create creates an object (its source is then "api").
func (c *Client) Create(ctx context.Context, res Resource, obj *Object, opts WriteOptions) (*Object, error) {
	var out Object
	if err := c.do(ctx, http.MethodPost, "/v1/"+string(res), writeQuery(opts), obj, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Update replaces an object; obj.Metadata.ResourceVersion must be the version
// it was read at.
func (c *Client) Update(ctx context.Context, res Resource, obj *Object, opts WriteOptions) (*Object, error) {
	q := writeQuery(opts)
	if obj.Metadata.Namespace != "" {
		q.Set("namespace", obj.Metadata.Namespace)
	}
	var out Object
	if err := c.do(ctx, http.MethodPut, objectPath(res, obj.Metadata.Name), q, obj, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes an object.
func (c *Client) Delete(ctx context.Context, res Resource, namespace, name string, opts DeleteOptions) (*Deleted, error) {
	q := writeQuery(WriteOptions{Force: opts.Force, Reason: opts.Reason})
	setIf(q, "namespace", namespace)
	setIf(q, "resourceVersion", opts.ResourceVersion)
	var out Deleted
	if err := c.do(ctx, http.MethodDelete, objectPath(res, name), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events returns a page of the event log.
func (c *Client) Events(ctx context.Context, opts EventOptions) (*EventList, error) {
	var out EventList
	if err := c.do(ctx, http.MethodGet, "/v1/events", opts.query(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkflowEvents returns a page of one workflow's events (opts.Kind and
// opts.Name are ignored).
func (c *Client) WorkflowEvents(ctx context.Context, namespace, name string, opts EventOptions) (*EventList, error) {
	opts.Kind, opts.Name, opts.Namespace = "", "", namespace
	var out EventList
	if err := c.do(ctx, http.MethodGet, objectPath(Workflows, name)+"/events", opts.query(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Retry starts the workflow's latest run again: from the action that failed,
// or from the first action with fromStart.
func (c *Client) Retry(ctx context.Context, namespace, name string, fromStart bool) (*Run, error) {
	q := nsQuery(namespace)
	if fromStart {
		q.Set("fromStart", "true")
	}
	var out Run
	if err := c.do(ctx, http.MethodPost, objectPath(Workflows, name)+"/retry", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Power runs a power action (on, off, cycle, reset, soft, status) on a
// machine's BMC.
func (c *Client) Power(ctx context.Context, namespace, name, action string) (*BMCResult, error) {
	var out BMCResult
	if err := c.do(ctx, http.MethodPost, objectPath(Hardware, name)+"/power", nsQuery(namespace), PowerRequest{Action: action}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BootDevice sets a machine's next boot device (pxe, disk, cdrom, bios),
// once or persistently.
func (c *Client) BootDevice(ctx context.Context, namespace, name, device string, persistent bool) (*BMCResult, error) {
	var out BMCResult
	if err := c.do(ctx, http.MethodPost, objectPath(Hardware, name)+"/bootdevice", nsQuery(namespace), BootDeviceRequest{Device: device, Persistent: persistent}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Backup streams a backup of the server's live store to w (admin) and
// returns the bytes copied. A stream cut short is not an error here; the
// backup's own end digest tells (see badger.VerifyBackup).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/backup", nil, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// Cancel cancels the workflow's latest run.
func (c *Client) Cancel(ctx context.Context, namespace, name string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, objectPath(Workflows, name)+"/cancel", nsQuery(namespace), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return c.status(ctx, http.MethodGet, "/v1/status")
}

// Sync asks the server to reconcile now and waits for it; the status then
// says how it went.
func (c *Client) Sync(ctx context.Context) (*Status, error) {
	return c.status(ctx, http.MethodPost, "/v1/sync")
}

// Suspend pauses reconciliation.
func (c *Client) Suspend(ctx context.Context) (*Status, error) {
	return c.status(ctx, http.MethodPost, "/v1/suspend")
}

// Resume resumes reconciliation.
func (c *Client) Resume(ctx context.Context) (*Status, error) {
	return c.status(ctx, http.MethodPost, "/v1/resume")
}

func (c *Client) status(ctx context.Context, method, path string) (*Status, error) {
	var out Status
	if err := c.do(ctx, method, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func objectPath(res Resource, name string) string {
	return "/v1/" + string(res) + "/" + url.PathEscape(name)
}

func nsQuery(ns string) url.Values {
	q := url.Values{}
	setIf(q, "namespace", ns)
	return q
}

func writeQuery(o WriteOptions) url.Values {
	q := url.Values{}
	if o.Force {
		q.Set("force", "true")
	}
	setIf(q, "reason", o.Reason)
	return q
}

// newRequest builds a request to path with query and a JSON body (nil: none).
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	u, err := url.Parse(c.base.String() + path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send performs a request and turns an error status into *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("cannot reach tink-server at %s: %w", c.base, unwrapURLError(err))
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponse))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	return nil
}

// decodeError reads an error response. A body that is not the API's error
// shape (a proxy's error page) becomes an *Error with the status's code.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != "" {
		body.Error.StatusCode = resp.StatusCode
		return body.Error
	}
	text := strings.TrimSpace(string(b))
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	if len(text) > 200 {
		text = text[:200]
	}
	msg := "server answered " + resp.Status
	if text != "" {
		msg += ": " + text
	}
	return &Error{StatusCode: resp.StatusCode, Code: codeForStatus(resp.StatusCode), Message: msg}
}

// codeForStatus guesses the code of an error response that did not carry one.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return state.EINVALID
	case http.StatusUnauthorized:
		return state.EUNAUTHORIZED
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return state.ENOTFOUND
	case http.StatusConflict:
		return state.ECONFLICT
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return state.EINTERNAL
}
