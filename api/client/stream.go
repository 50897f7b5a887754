package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Server-sent event names of the API's streams. Events of the log come as
// unnamed messages with the sequence number as id; the others are:
const (
	// StreamOpen is the first message: {"since": N}, the stream delivers
	// events after N.
	StreamOpen = "open"
	// StreamEndEvent is the last message of a workflow's stream, a StreamEnd.
	StreamEndEvent = "end"
	// StreamError reports why a stream stopped early, an ErrorBody.
	StreamError = "error"
)

// streamRetries is how often a dropped stream is resumed in a row before the
// follow gives up; with the growing pause between tries, a server restart
// of up to half a minute goes unnoticed.
const streamRetries = 15

// maxStreamLine bounds one line of an event stream.
const maxStreamLine = 4 << 20

// FollowEvents delivers events to fn in sequence order as they are written,
// until ctx ends (it then returns ctx's error), fn fails, or the server stops
// the stream. opts.Since nil starts with the events written from now on.
// After a dropped connection it resumes from the last event it delivered,
// so fn sees every event once.
func (c *Client) FollowEvents(ctx context.Context, opts EventOptions, fn func(state.Event) error) error {
	_, err := c.follow(ctx, "/v1/events", opts, fn)
	return err
}

// FollowWorkflow delivers a workflow's events to fn (those after opts.Since,
// or all retained ones when it is nil; then live ones) until the workflow's
// latest run reaches a terminal state, and returns how it ended. opts.Kind
// and opts.Name are ignored; opts.Namespace is the workflow's namespace.
func (c *Client) FollowWorkflow(ctx context.Context, namespace, name string, opts EventOptions, fn func(state.Event) error) (*StreamEnd, error) {
	opts.Kind, opts.Name, opts.Namespace = "", "", namespace
	end, err := c.follow(ctx, objectPath(Workflows, name)+"/events", opts, fn)
	if err == nil && end == nil {
		err = fmt.Errorf("the event stream of workflow %s ended before its run did", name)
	}
	return end, err
}

// follow runs one stream, resuming it after dropped connections.
func (c *Client) follow(ctx context.Context, path string, opts EventOptions, fn func(state.Event) error) (*StreamEnd, error) {
	since := opts.Since
	failures := 0
	for {
		q := opts.query()
		q.Set("follow", "true")
		if since != nil {
			q.Set("since", strconv.FormatUint(*since, 10))
		}
		delivered := false
		end, err := c.streamOnce(ctx, path, q, func(open uint64) {
			if since == nil {
				since = &open
			}
		}, func(ev state.Event) error {
			seq := ev.Seq
			since = &seq
			delivered = true
			return fn(ev)
		})
		var drop *droppedError
		var ae *Error
		switch {
		case errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable:
			drop = &droppedError{err}
		case !errors.As(err, &drop):
			return end, err
		}
		if delivered {
			failures = 0
		}
		if failures++; failures > streamRetries {
			return nil, drop.err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)):
		}
	}
}

// droppedError marks a stream that broke off without the server ending it;
// follow resumes it.
type droppedError struct{ err error }

// Error returns the cause.
func (e *droppedError) Error() string { return e.err.Error() }

// streamOnce reads one server-sent event stream. It returns the StreamEnd if
// the server sent one, nil and nil if the server closed the stream cleanly
// without one (a follow of all events ends only with ctx), or an error.
func (c *Client) streamOnce(ctx context.Context, path string, q url.Values, open func(uint64), fn func(state.Event) error) (*StreamEnd, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &droppedError{fmt.Errorf("cannot reach tink-server at %s: %w", c.base, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, decodeError(resp)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var name string
	var data strings.Builder
	for {
		line, err := readLine(r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) && data.Len() == 0 {
				return nil, &droppedError{errors.New("the server closed the event stream")}
			}
			return nil, &droppedError{fmt.Errorf("read event stream: %w", err)}
		}
		switch {
		case line == "":
			if data.Len() == 0 {
				name = ""
				continue
			}
			payload := []byte(strings.TrimSuffix(data.String(), "\n"))
			data.Reset()
			kind := name
			name = ""
			switch kind {
			case "", "message":
				var ev state.Event
				if err := json.Unmarshal(payload, &ev); err != nil {
					return nil, fmt.Errorf("decode event: %w", err)
				}
				if err := fn(ev); err != nil {
					return nil, err
				}
			case StreamOpen:
				var o struct {
					Since uint64 `json:"since"`
				}
				if err := json.Unmarshal(payload, &o); err != nil {
					return nil, fmt.Errorf("decode stream start: %w", err)
				}
				open(o.Since)
			case StreamEndEvent:
				var end StreamEnd
				if err := json.Unmarshal(payload, &end); err != nil {
					return nil, fmt.Errorf("decode stream end: %w", err)
				}
				return &end, nil
			case StreamError:
				var body ErrorBody
				if err := json.Unmarshal(payload, &body); err != nil || body.Error == nil {
					return nil, fmt.Errorf("the server stopped the event stream: %s", payload)
				}
				return nil, body.Error
			}
		case strings.HasPrefix(line, ":"):
			// a keep-alive comment
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				name = value
			case "data":
				data.WriteString(value)
				data.WriteByte('\n')
			}
		}
	}
}

// readLine reads one line without its line ending, within maxStreamLine.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > maxStreamLine {
			return "", errors.New("event stream line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}
