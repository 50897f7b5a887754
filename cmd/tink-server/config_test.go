package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func parseWith(t *testing.T, env map[string]string, args ...string) (*Main, error) {
	t.Helper()
	var stderr bytes.Buffer
	m := NewMain(&stderr, &stderr)
	m.Getenv = func(k string) string { return env[k] }
	return m, m.ParseFlags(args)
}

// TestConfigLayers: defaults < config file < environment < flags, with one
// set of names.
func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tink.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("repo: https://git.example/fleet.git\nbranch: from-file\npoll-interval: 5m\nprune: true\nlog-format: json\n"), 0o644))

	m, err := parseWith(t, map[string]string{"TINK_BRANCH": "from-env", "TINK_DATA_DIR": "/var/lib/tink"}, "--config", cfg, "--poll-interval", "30s")
	require.NoError(t, err)
	c := m.Config
	require.Equal(t, "https://git.example/fleet.git", c.Repo, "from the file")
	require.Equal(t, "from-env", c.Branch, "the environment wins over the file")
	require.Equal(t, 30*time.Second, c.PollInterval, "the command line wins over the file")
	require.Equal(t, "/var/lib/tink", c.DataDir)
	require.True(t, c.Prune)
	require.Equal(t, 15*time.Second, c.BMCTimeout, "defaults stay")

	// TINK_CONFIG names the file too; TINK_WEBHOOK_SECRET keeps working.
	m, err = parseWith(t, map[string]string{"TINK_CONFIG": cfg, "TINK_WEBHOOK_SECRET": "s3cret"})
	require.NoError(t, err)
	require.Equal(t, "from-file", m.Config.Branch)
	require.Equal(t, "s3cret", m.Config.WebhookSecret)
}

// TestConfigErrorsNameTheSetting: a bad setting fails at start, naming the
// flag and where the value came from.
func TestConfigErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("repo: x\npoll-intervall: 5m\nbmc-retries: many\n"), 0o644))
	_, err := parseWith(t, nil, "--config", bad)
	require.ErrorContains(t, err, bad+`:2:1: unknown setting "poll-intervall"`)
	require.ErrorContains(t, err, bad+`:3:1: invalid value "many" for --bmc-retries: parse error`)

	_, err = parseWith(t, map[string]string{"TINK_POLL_INTERVAL": "soon"}, "--repo", "x")
	require.ErrorContains(t, err, `invalid value "soon" for --poll-interval from TINK_POLL_INTERVAL`)

	_, err = parseWith(t, nil, "--repo", "x", "--log-level", "loud")
	require.EqualError(t, err, `invalid value "loud" for --log-level: want debug, info, warn or error`)
	_, err = parseWith(t, nil, "--repo", "x", "--log-format", "xml")
	require.EqualError(t, err, `invalid value "xml" for --log-format: want auto, json or text`)
	_, err = parseWith(t, nil, "--repo", "x", "--secrets-dir", filepath.Join(dir, "missing"))
	require.EqualError(t, err, "--secrets-dir "+filepath.Join(dir, "missing")+" is not a directory")
	_, err = parseWith(t, nil, "--repo", "x", "--bmc-timeout", "0s")
	require.EqualError(t, err, "--bmc-timeout must be positive, got 0s")
	_, err = parseWith(t, nil, "--repo", "x", "stray")
	require.ErrorContains(t, err, `unexpected argument "stray"`)
	_, err = parseWith(t, nil, "--config", filepath.Join(dir, "nope.yaml"))
	require.ErrorContains(t, err, "--config: open "+filepath.Join(dir, "nope.yaml"))
}

// TestHelpNamesEnvironment: --help documents every flag's variable.
func TestHelpNamesEnvironment(t *testing.T) {
	var stderr bytes.Buffer
	m := NewMain(&stderr, &stderr)
	require.ErrorIs(t, m.ParseFlags([]string{"--help"}), flag.ErrHelp)
	for _, want := range []string{"-data-dir", "(env TINK_DATA_DIR)", "-secrets-dir", "(env TINK_SECRETS_DIR)", "-bmc-poll-interval", "-log-level", "-config"} {
		require.Contains(t, stderr.String(), want)
	}
}

// TestLogFormat: JSON when asked (and when stderr is not a terminal), text
// when asked, at the level asked.
func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "warn", "auto")
	require.NoError(t, err)
	log.Info("hidden")
	log.Warn("shown", "workflow", "wf-1")
	require.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("\n")))
	require.Contains(t, buf.String(), `"msg":"shown","workflow":"wf-1"`)
	buf.Reset()
	log, err = newLogger(&buf, "debug", "text")
	require.NoError(t, err)
	log.Debug("shown", "run", 2)
	require.Contains(t, buf.String(), "level=DEBUG msg=shown run=2")
}
