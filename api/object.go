package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// bodyName is the file name errors in a request body are reported under.
const bodyName = "body"

// toWire converts a stored object to the API's shape. The spec is passed
// through as stored (it is the JSON of the declared type, as ToState wrote
// it).
func toWire(o *state.Object) client.Object {
	apiVersion := schema.APIVersion
	if o.Kind == state.KindMachine {
		apiVersion = schema.BMCAPIVersion
	}
	w := client.Object{
		APIVersion: apiVersion,
		Kind:       o.Kind,
		Metadata: client.ObjectMeta{
			Name:            o.Name,
			Namespace:       o.Namespace,
			Labels:          o.Labels,
			Annotations:     o.Annotations,
			ResourceVersion: strconv.FormatUint(o.ResourceVersion, 10),
		},
		Spec: o.Spec,
		Status: &client.ObjectStatus{
			Source:    string(o.Source),
			Revision:  o.Revision,
			File:      o.File,
			CreatedAt: o.CreatedAt,
			UpdatedAt: o.UpdatedAt,
			Runtime:   o.Status,
		},
	}
	if ov := o.Override; ov != nil {
		w.Status.Override = &client.Override{By: string(ov.By), At: ov.At, Reason: ov.Reason, GitSpec: ov.GitSpec}
		w.Status.Drift = specDrift(ov.GitSpec, o.Spec)
	}
	return w
}

// readBody reads a request body within the server's limit.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	tooLarge := Errorf(ETOOLARGE, "the request body is larger than the limit of %s", sizeText(s.maxBody))
	if r.ContentLength > s.maxBody {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		return nil, Errorf(state.EINVALID, "read the request body: %v", err)
	}
	if int64(len(b)) > s.maxBody {
		return nil, tooLarge
	}
	return b, nil
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// pushed is an object decoded from a request body.
type pushed struct {
	obj     *state.Object
	decoded schema.Object
	// rv is metadata.resourceVersion as sent; 0 when absent.
	rv uint64
}

// decodeBody reads one object of kind from the request body (JSON or YAML;
// a bare template document for templates) and validates it with package
// schema, returning every problem with its field path.
func (s *Server) decodeBody(r *http.Request, kind string) (*pushed, error) {
	b, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, Errorf(state.EINVALID, "the request body is empty; send a %s object as JSON or YAML", kind)
	}
	if t := bytes.TrimSpace(b); t[0] == '{' || t[0] == '[' {
		if err := checkJSON(b); err != nil {
			return nil, err
		}
	}
	objs, _, list := s.loader.DecodeFile(bodyName, b)
	if len(list) > 0 {
		return nil, invalid(schemaDetails(list), "the %s in the request body is not valid: %s", kind, problems(len(list)))
	}
	switch {
	case len(objs) == 0:
		return nil, Errorf(state.EINVALID, "the request body holds no object; send a %s", kind)
	case len(objs) > 1:
		return nil, Errorf(state.EINVALID, "the request body holds %d objects; send one per request", len(objs))
	case objs[0].GetKind() != kind:
		return nil, invalid([]client.Detail{{Path: "kind", Message: fmt.Sprintf("want %s, got %s", kind, objs[0].GetKind())}},
			"this collection holds %s objects; the request body is a %s", kind, objs[0].GetKind())
	}
	so, err := reconciler.ToState(objs[0], state.SourceAPI, "")
	if err != nil {
		return nil, err
	}
	so.File = ""
	rv, err := sentResourceVersion(b)
	if err != nil {
		return nil, err
	}
	return &pushed{obj: so, decoded: objs[0], rv: rv}, nil
}

func problems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}

// checkJSON reports malformed JSON with its line and column, which reads
// better than the YAML parser's view of it.
func checkJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			return Errorf(state.EINVALID, "the request body holds more than one JSON value")
		}
		return nil
	}
	// pos is the offending byte: a syntax error is found after reading it;
	// a truncated document ends where the input does.
	pos := int64(len(bytes.TrimRight(b, " \t\r\n")))
	var se *json.SyntaxError
	if errors.As(err, &se) {
		pos = se.Offset - 1
	}
	line, col := lineCol(b, pos)
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of JSON input"
	}
	return invalid([]client.Detail{{Line: line, Column: col, Message: msg}}, "the request body is not valid JSON: %s (line %d, column %d)", msg, line, col)
}

// lineCol returns the 1-based line and column of byte pos.
func lineCol(b []byte, pos int64) (line, col int) {
	pos = min(max(pos, 0), int64(len(b)))
	before := b[:pos]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(pos) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// sentResourceVersion reads metadata.resourceVersion from a body (schema
// drops it as a server-set field). A string, as Kubernetes writes it, or a
// number.
func sentResourceVersion(b []byte) (uint64, error) {
	var doc struct {
		Metadata struct {
			ResourceVersion yaml.Node `yaml:"resourceVersion"`
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return 0, nil // not an object document (a bare template): none sent
	}
	n := doc.Metadata.ResourceVersion
	if n.Kind == 0 || n.Value == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(n.Value, 10, 64)
	if err != nil || n.Kind != yaml.ScalarNode {
		return 0, invalid([]client.Detail{{Path: "metadata.resourceVersion", Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%q is not a resource version (a decimal number)", n.Value)}},
			"metadata.resourceVersion %q is not a resource version", n.Value)
	}
	return rv, nil
}

// queryBool reads a boolean query parameter; absent is false.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Errorf(state.EINVALID, "query parameter %s=%q: want true or false", name, v)
	}
	return b, nil
}

// queryUint reads an unsigned query parameter; ok is false when absent.
func queryUint(r *http.Request, name string) (n uint64, ok bool, err error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, Errorf(state.EINVALID, "query parameter %s=%q: want a non-negative integer", name, v)
	}
	return n, true, nil
}

// queryLimit reads limit, applying a default and a maximum.
func queryLimit(r *http.Request, def, maxLimit int) (int, error) {
	n, ok, err := queryUint(r, "limit")
	switch {
	case err != nil:
		return 0, err
	case !ok || n == 0:
		return def, nil
	case n > uint64(maxLimit):
		return 0, Errorf(state.EINVALID, "limit %d is above the maximum of %d; page with continue", n, maxLimit)
	}
	return int(n), nil
}

// specDrift lists the spec paths where the spec in effect differs from
// what Git declares, at most maxDriftPaths of them.
func specDrift(gitSpec, spec json.RawMessage) []string {
	var a, b any
	if json.Unmarshal(gitSpec, &a) != nil || json.Unmarshal(spec, &b) != nil {
		return []string{"spec"}
	}
	var out []string
	diffValues("spec", a, b, &out)
	return out
}

const maxDriftPaths = 50

func diffValues(path string, a, b any, out *[]string) {
	if len(*out) >= maxDriftPaths {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			diffValues(path+"."+k, am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diffValues(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, path)
	}
}
