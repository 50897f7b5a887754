package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		var out, errs bytes.Buffer
		code := run(context.Background(), args, &out, &errs)
		require.Equal(t, 0, code, errs.String())
		require.Contains(t, out.String(), "Usage:\n  tink-worker [flags]")
		require.Contains(t, out.String(), "--cmdline string")
		require.Contains(t, out.String(), "--actions-dir string")
	}
	var out, errs bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"--no-such-flag"}, &out, &errs))
	require.Equal(t, "tink-worker: unknown flag: --no-such-flag\n", errs.String())
	errs.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"extra"}, &out, &errs))
	require.Contains(t, errs.String(), `unknown command "extra"`)
}

func TestKernelArgs(t *testing.T) {
	got := kernelArgs("BOOT_IMAGE=/vmlinuz quiet worker_id=52:54:00:aa:00:01 tink_server=http://10.0.2.2:42113 msg=\"two words\" worker_id=node-01\n")
	require.Equal(t, map[string]string{"BOOT_IMAGE": "/vmlinuz", "quiet": "", "worker_id": "node-01", "tink_server": "http://10.0.2.2:42113", "msg": "two words"}, got)
}

// startedWith runs tink-worker with a context that has already ended and
// returns the settings its start line logs.
func startedWith(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errs bytes.Buffer
	code := run(ctx, append([]string{"--work-dir", t.TempDir()}, args...), &out, &errs)
	require.Equal(t, 0, code, errs.String())
	return errs.String()
}

func TestCmdlineSettings(t *testing.T) {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	require.NoError(t, os.WriteFile(cmdline, []byte("console=ttyS0 worker_id=52:54:00:aa:00:01 hw_addr=52:54:00:aa:00:01 tink_server=http://10.0.2.2:42113\n"), 0o644))

	log := startedWith(t, nil, "--cmdline", cmdline)
	require.Contains(t, log, `worker=52:54:00:aa:00:01`)
	require.Contains(t, log, `server=http://10.0.2.2:42113`)

	// The kernel line beats the environment; the command line beats both.
	log = startedWith(t, map[string]string{"TINK_SERVER": "http://env:1", "TINK_WORKER_ID": "from-env"}, "--cmdline", cmdline)
	require.Contains(t, log, `worker=52:54:00:aa:00:01`)
	require.Contains(t, log, `server=http://10.0.2.2:42113`)
	log = startedWith(t, nil, "--cmdline", cmdline, "--id", "node-09", "--server", "http://flag:2")
	require.Contains(t, log, `worker=node-09`)
	require.Contains(t, log, `server=http://flag:2`)

	// Without worker_id=, hw_addr= names the machine.
	require.NoError(t, os.WriteFile(cmdline, []byte("hw_addr=52:54:00:aa:00:02"), 0o644))
	require.Contains(t, startedWith(t, nil, "--cmdline", cmdline), `worker=52:54:00:aa:00:02`)

	var out, errs bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"--cmdline", filepath.Join(t.TempDir(), "missing")}, &out, &errs))
	require.Contains(t, errs.String(), "tink-worker: --cmdline: open ")
	errs.Reset()
	require.NoError(t, os.WriteFile(cmdline, []byte("quiet"), 0o644))
	t.Setenv("TINK_WORKER_ID", "")
	require.Equal(t, 2, run(context.Background(), []string{"--cmdline", cmdline}, &out, &errs))
	require.Equal(t, "tink-worker: --id is required: the hardware name or a MAC of this machine (or --cmdline with worker_id=)\n", errs.String())
}
