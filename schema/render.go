package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"
)

// MaxRenderSize caps a rendered template, as Tinkerbell does (256 KiB): a
// template that expands beyond it is a mistake or an attack.
const MaxRenderSize = 256 << 10

// errRenderTooLarge is returned by the capped writer.
var errRenderTooLarge = fmt.Errorf("rendered template exceeds %d bytes (256 KiB)", MaxRenderSize)

// Renderer renders Tinkerbell templates with Tinkerbell's functions. It
// holds the function map, built once (sprig's map has ~200 entries), and is
// safe for concurrent use.
type Renderer struct {
	funcs template.FuncMap
	run   template.FuncMap // see runFuncs
}

// NewRenderer returns a Renderer with sprig's hermetic text functions plus
// formatPartition, netmaskToPrefixLength, toYaml and fromYaml, exactly the
// set Tinkerbell gives templates.
func NewRenderer() *Renderer {
	fm := sprig.HermeticTxtFuncMap()
	fm["formatPartition"] = formatPartition
	fm["netmaskToPrefixLength"] = netmaskToPrefixLength
	fm["toYaml"] = toYaml
	fm["fromYaml"] = fromYaml
	// Sprig builds these results whole before the output cap can see them:
	// repeat 100000000 "x" allocates 100 MB and until 1e9 a list of 8 GB.
	// They are bounded here so one template cannot take the server down;
	// real templates stay far below the bounds.
	fm["repeat"] = func(count int, str string) (string, error) {
		if count < 0 || (len(str) > 0 && count > MaxRenderSize/len(str)) {
			return "", fmt.Errorf("repeat: %d copies of %d bytes exceed the %d-byte output cap", count, len(str), MaxRenderSize)
		}
		return strings.Repeat(str, count), nil
	}
	until, untilStep, seq := fm["until"].(func(int) []int), fm["untilStep"].(func(int, int, int) []int), fm["seq"].(func(...int) string)
	fm["until"] = func(count int) ([]int, error) {
		if count > maxListItems || count < -maxListItems {
			return nil, fmt.Errorf("until: %d items; the limit is %d", count, maxListItems)
		}
		return until(count), nil
	}
	fm["untilStep"] = func(start, stop, step int) ([]int, error) {
		if step != 0 && (stop-start)/step > maxListItems {
			return nil, fmt.Errorf("untilStep: more than %d items", maxListItems)
		}
		return untilStep(start, stop, step), nil
	}
	fm["seq"] = func(params ...int) (string, error) {
		lo, hi, step := 1, 0, 1
		switch len(params) {
		case 1:
			hi = params[0]
		case 2:
			lo, hi = params[0], params[1]
		case 3:
			lo, step, hi = params[0], params[1], params[2]
		}
		if step != 0 && (hi-lo)/step > maxListItems || (step == 0 && len(params) == 3) {
			return "", fmt.Errorf("seq: more than %d items", maxListItems)
		}
		if (hi-lo > maxListItems || lo-hi > maxListItems) && len(params) < 3 {
			return "", fmt.Errorf("seq: more than %d items", maxListItems)
		}
		return seq(params...), nil
	}
	// set and the merges write into a dict. A dict put into itself (set $d
	// "a" $d) makes printing it recurse until the stack overflows, a fatal
	// error that no recover catches: they refuse to make a cycle.
	for _, name := range []string{"set", "merge", "mergeOverwrite", "mustMerge", "mustMergeOverwrite"} {
		fm[name] = acyclic(name, fm[name])
	}
	r := &Renderer{funcs: fm}
	r.run = r.runFuncs()
	for name, est := range sizeEstimates() {
		if fn, ok := r.run[name]; ok {
			r.run[name] = sized(name, fn, est)
		}
	}
	return r
}

// maxListItems bounds the lists until, untilStep and seq may build.
const maxListItems = 100_000

// Parse parses template text with missingkey=error, Tinkerbell's option,
// into a Program that renders under a budget (see MaxRenderSteps).
//
// A template, and each of its clones that render at once, carries maps of
// every function it was parsed with: ~200 for each of a fleet's templates
// and their runners held 10 MB. So once parsed, the text is parsed again
// with only the functions it names (the same tree), and its runners meter
// only those.
func (r *Renderer) Parse(name, text string) (*Program, error) {
	parse := func(funcs template.FuncMap) (*template.Template, error) {
		return template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	}
	t, err := parse(r.funcs)
	if err != nil {
		return nil, err
	}
	run := r.run
	if names, ok := calledNames(t); ok {
		if small, err := parse(onlyFuncs(r.funcs, names)); err == nil {
			t, run = small, onlyFuncs(r.run, names)
		}
	}
	return newProgram(t, run), nil
}

// runFuncs is the function map a rendering runs with: the parse-time one
// plus the builtins that build strings (print, printf, println and the
// escapers), which must pay for what they build too.
func (r *Renderer) runFuncs() template.FuncMap {
	fm := make(template.FuncMap, len(r.funcs)+6)
	for k, v := range r.funcs {
		fm[k] = v
	}
	fm["print"] = fmt.Sprint
	fm["printf"] = fmt.Sprintf
	fm["println"] = fmt.Sprintln
	fm["html"] = template.HTMLEscaper
	fm["js"] = template.JSEscaper
	fm["urlquery"] = template.URLQueryEscaper
	return fm
}

// Execute runs a parsed template under its budget, capping the output at
// MaxRenderSize. ctx stops it: the HTTP request that asked for it ended or
// the sync timed out.
func (r *Renderer) Execute(ctx context.Context, p *Program, data any) ([]byte, error) {
	w := &cappedWriter{limit: MaxRenderSize}
	if err := p.execute(ctx, w, data); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

type cappedWriter struct {
	buf   bytes.Buffer
	limit int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, errRenderTooLarge
	}
	return w.buf.Write(p)
}

// TemplateHardware is .Hardware as Tinkerbell gives it to templates: Go
// field names, disks as device paths.
type TemplateHardware struct {
	Disks      []string
	Interfaces []Interface
	UserData   string
	Metadata   HardwareMetadata
	VendorData string
}

// TemplateData builds what a template sees when rendered for a workflow:
// the hardwareMap keys at the top level, then .hardware (the whole object as
// JSON-shaped maps), .Hardware (Tinkerbell's legacy shape) and .references.
// As in Tinkerbell, the reserved keys win over hardwareMap keys of the same
// name.
func TemplateData(hw *Hardware, hardwareMap map[string]string) map[string]any {
	return templateData(hw, hardwareMap, true)
}

// templateData builds the data; withObject false leaves .hardware empty for
// templates that never read it (building it costs a JSON round trip of the
// whole object per workflow).
func templateData(hw *Hardware, hardwareMap map[string]string, withObject bool) map[string]any {
	data := make(map[string]any, len(hardwareMap)+3)
	for k, v := range hardwareMap {
		data[k] = v
	}
	var th TemplateHardware
	hwMap := map[string]any{}
	if hw != nil {
		for _, d := range hw.Spec.Disks {
			th.Disks = append(th.Disks, d.Device)
		}
		th.Interfaces = hw.Spec.Interfaces
		if hw.Spec.UserData != nil {
			th.UserData = *hw.Spec.UserData
		}
		if hw.Spec.Metadata != nil {
			th.Metadata = *hw.Spec.Metadata
		}
		if hw.Spec.VendorData != nil {
			th.VendorData = *hw.Spec.VendorData
		}
		if withObject {
			if b, err := json.Marshal(hw); err == nil {
				_ = json.Unmarshal(b, &hwMap) // the types marshal to a JSON object by construction
			}
		}
	}
	data["hardware"] = hwMap
	data["Hardware"] = th
	data["references"] = map[string]any{}
	return data
}

// formatPartition names partition n of a disk the way Linux does:
// /dev/sda + 1 -> /dev/sda1, /dev/nvme0n1 + 1 -> /dev/nvme0n1p1,
// /dev/disk/by-id/x + 1 -> /dev/disk/by-id/x-part1.
func formatPartition(dev string, partition int) string {
	if strings.HasPrefix(dev, "/dev/disk/") {
		return fmt.Sprintf("%v-part%v", dev, partition)
	}
	if len(dev) > 0 && dev[len(dev)-1] >= '0' && dev[len(dev)-1] <= '9' {
		return fmt.Sprintf("%vp%v", dev, partition)
	}
	return fmt.Sprintf("%v%v", dev, partition)
}

// netmaskToPrefixLength turns 255.255.255.0 into "24".
func netmaskToPrefixLength(netmask string) (string, error) {
	ip := net.ParseIP(netmask)
	if ip == nil {
		return "", fmt.Errorf("invalid netmask format: %s", netmask)
	}
	ipv4 := ip.To4()
	if ipv4 == nil {
		return "", fmt.Errorf("netmask must be IPv4: %s", netmask)
	}
	ones, _ := net.IPMask(ipv4).Size()
	return strconv.Itoa(ones), nil
}

// toYaml and fromYaml go through sigs.k8s.io/yaml (JSON semantics, sorted
// keys) as Tinkerbell's do, so their output is byte for byte the same.
func toYaml(v any) (string, error) {
	data, err := k8syaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toYaml: %w", err)
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYaml(str string) (any, error) {
	if str == "" {
		return nil, errors.New("fromYaml: empty YAML input")
	}
	var out any
	if err := k8syaml.Unmarshal([]byte(str), &out); err != nil {
		return nil, fmt.Errorf("fromYaml: %w", err)
	}
	return out, nil
}

// templateErrorPattern reads text/template's "template: NAME:LINE[:COL]: msg".
type templateErrorParser struct {
	re *regexp.Regexp
}

func newTemplateErrorParser() *templateErrorParser {
	return &templateErrorParser{re: regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: (.*)$`)}
}

// parse splits a text/template error into its line, column and message, with
// the noise ("executing \"t\" at") removed.
func (p *templateErrorParser) parse(err error) (line, col int, msg string) {
	s := err.Error()
	m := p.re.FindStringSubmatch(firstLine(s))
	if m == nil {
		return 0, 0, s
	}
	line, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		col, _ = strconv.Atoi(m[2])
	}
	msg = m[3]
	if i := strings.Index(msg, "executing \""); i == 0 {
		if j := strings.Index(msg, "\" at "); j > 0 {
			msg = msg[j+len("\" at "):]
		}
	}
	// The budget's own calls are not the template's: say only what ran out.
	if strings.HasPrefix(msg, "<tinkops") {
		if _, rest, ok := strings.Cut(msg, ": error calling tinkops"); ok {
			if _, m, ok := strings.Cut(rest, ": "); ok {
				msg = m
			}
		}
	}
	return line, col, msg
}

// parseDocument decodes rendered YAML strictly into a TemplateDocument: an
// unknown key is an error (Tinkerbell's own decoder would drop it, and a
// typo such as "enviroment" would silently lose the variables). String
// fields keep their literal text, as yaml.v3 gives Tinkerbell: MODE: 0644 is
// "0644".
//
// The scalars, environments and lists of t's first clean rendering are
// shared by its later ones (parsedTemplate.words and shared).
func (l *Loader) parseDocument(file string, rendered []byte, t *parsedTemplate) (*TemplateDocument, *yaml.Node, ErrorList) {
	var e errs
	var words map[string]string
	if w := t.words.Load(); w != nil {
		words = *w
	}
	root := fastParseWords(rendered, words) // one plain document, as yaml.v3 reads it
	if root == nil {
		root = &yaml.Node{}
		dec := yaml.NewDecoder(bytes.NewReader(rendered))
		if err := dec.Decode(root); err != nil {
			e.add(Pos{File: file, Line: yamlErrorLine(err)}, "", "rendered template is not valid YAML: %s", cleanYAMLError(err))
			return nil, nil, e.list
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); err == nil {
			e.add(Pos{File: file, Line: extra.Line}, "", "rendered template holds more than one YAML document")
		}
	}
	doc := &TemplateDocument{}
	body := root
	if body.Kind == yaml.DocumentNode && len(body.Content) > 0 {
		body = body.Content[0]
	}
	d := &decoder{types: &l.types, file: file, errs: &e, literalStrings: true}
	d.decode(body, reflectValueOf(doc), false)
	switch {
	case words == nil && len(e.list) == 0:
		t.learn(body, doc)
	case words != nil:
		t.share(doc)
	}
	return doc, body, e.list
}
