package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Configuration comes from, lowest first: the flags' defaults, a YAML
// config file (--config, keys are flag names), environment variables
// (TINK_ and the flag name in upper snake case), and the command line. One
// set of names everywhere, so an operator moving a setting from a flag to a
// Kubernetes env var or a ConfigMap renames nothing.

// envPrefix starts every environment variable tink-server reads.
const envPrefix = "TINK_"

// maxConfigFile bounds the config file: it is a handful of settings.
const maxConfigFile = 1 << 20

// envName is the environment variable of a flag: poll-interval is
// TINK_POLL_INTERVAL.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// withEnvUsage appends each flag's variable to its usage, so --help
// documents both.
func withEnvUsage(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " (env " + envName(f.Name) + ")"
	})
}

// configLayers applies the config file and the environment to fs before the
// command line is parsed. The config file is named by --config in args or
// by TINK_CONFIG. Every error names the flag (and the file or variable)
// at fault.
func configLayers(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	path := getenv(envName("config"))
	if p, ok := flagInArgs(args, "config"); ok {
		path = p
	}
	if path != "" {
		if err := applyConfigFile(fs, path); err != nil {
			return err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		v, ok := lookupEnv(getenv, envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for --%s from %s: %v", v, f.Name, envName(f.Name), err))
		}
	})
	return errors.Join(errs...)
}

// lookupEnv tells an empty variable from an unset one only where it can:
// getenv returns "" for both, and an empty value never sets a flag.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// flagInArgs finds -name/--name VALUE or -name=VALUE among args, stopping
// at "--" as the flag package does.
func flagInArgs(args []string, name string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		for _, p := range []string{"--" + name, "-" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// applyConfigFile sets flags from a YAML mapping of flag names to values.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return fmt.Errorf("--config %s: larger than %d bytes", path, maxConfigFile)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("--config %s: %v", path, err)
	}
	m := &doc
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("--config %s:%d: want a mapping of flag names to values", path, m.Line)
	}
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		name := k.Value
		at := fmt.Sprintf("%s:%d:%d", path, k.Line, k.Column)
		switch {
		case name == "config":
			errs = append(errs, fmt.Errorf("%s: config cannot name another config file", at))
		case fs.Lookup(name) == nil:
			errs = append(errs, fmt.Errorf("%s: unknown setting %q (settings are tink-server's flag names: %s)", at, name, flagNames(fs)))
		case v.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("%s: --%s wants a single value", at, name))
		default:
			if err := fs.Set(name, v.Value); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q for --%s: %v", at, v.Value, name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func flagNames(fs *flag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// newLogger builds the server's logger: JSON for machines, text when
// stderr is a terminal (auto), at the level asked for.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid value %q for --log-level: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid value %q for --log-format: want auto, json or text", format)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
