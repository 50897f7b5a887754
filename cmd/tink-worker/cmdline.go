package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// maxCmdline bounds the kernel command line file (Linux caps the line at a
// few KiB; anything much larger is not one).
const maxCmdline = 64 << 10

// kernelArgs parses a kernel command line into its key=value arguments
// (bare words map to ""); the last of repeated keys wins, as for the
// kernel's own parameters. Quoted values ("a b") keep their spaces.
func kernelArgs(line string) map[string]string {
	out := map[string]string{}
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
			}
			cur.Reset()
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		out[k] = v
	}
	return out
}

// fromKernel fills the settings the command line left unset from the
// kernel command line file o.cmdline: worker_id= (else hw_addr=) and
// tink_server=, which tinkops's iPXE script puts there. A kernel line
// beats the environment: it was written for this boot of this machine.
func (o *options) fromKernel(changed func(flag string) bool) error {
	if o.cmdline == "" {
		return nil
	}
	f, err := os.Open(o.cmdline)
	if err != nil {
		return fmt.Errorf("--cmdline: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline+1))
	if err != nil {
		return fmt.Errorf("--cmdline: %w", err)
	}
	if len(b) > maxCmdline {
		return fmt.Errorf("--cmdline %s: larger than %d bytes; not a kernel command line", o.cmdline, maxCmdline)
	}
	args := kernelArgs(string(b))
	if !changed("id") {
		if v := args["worker_id"]; v != "" {
			o.id = v
		} else if v := args["hw_addr"]; v != "" {
			o.id = v
		}
	}
	if v := args["tink_server"]; v != "" && !changed("server") {
		o.server = v
	}
	return nil
}
