// Command tink-worker runs on a machine being provisioned: it asks
// tink-server for the machine's next action, runs it, and reports how it
// went, until it is stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	dockerclient "github.com/moby/moby/client"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tink-worker:", err)
		os.Exit(2)
	}
}

// env returns the environment variable's value, or def.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tink-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", env("TINK_SERVER", "http://127.0.0.1:42113"), "tink-server URL (env TINK_SERVER)")
	id := fs.String("id", env("TINK_WORKER_ID", ""), "this machine: its hardware name or a MAC (env TINK_WORKER_ID)")
	token := fs.String("token", "", "worker token (env TINK_TOKEN; prefer the environment: arguments are visible in ps)")
	runtime := fs.String("runtime", env("TINK_RUNTIME", "process"), "how actions run: process (on the host) or docker (containers through the Docker Engine; DOCKER_HOST, default /var/run/docker.sock) (env TINK_RUNTIME)")
	pull := fs.String("pull", env("TINK_PULL", string(worker.PullIfNotPresent)), "docker runtime: when to pull an action's image: always, if-not-present or never (env TINK_PULL)")
	privileged := fs.Bool("privileged", true, "docker runtime: run actions privileged, as Tinkerbell does; false for an engine that cannot grant every capability")
	stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "docker runtime: how long a timed-out action gets between SIGTERM and SIGKILL")
	workDir := fs.String("work-dir", env("TINK_WORK_DIR", filepath.Join(os.TempDir(), "tink-worker")), "working directories of actions and undelivered reports")
	actionsDir := fs.String("actions-dir", env("TINK_ACTIONS_DIR", ""), "process runtime: where an action without a command finds the executable named after its image")
	wait := fs.Duration("wait", 30*time.Second, "how long one request for work waits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("TINK_TOKEN")
	}
	if *id == "" {
		return errors.New("--id is required: the hardware name or a MAC of this machine")
	}
	if err := os.MkdirAll(*workDir, 0o700); err != nil {
		return fmt.Errorf("--work-dir: %w", err)
	}
	policy, err := worker.ParsePullPolicy(*pull)
	if err != nil {
		return fmt.Errorf("--pull: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("worker", *id)
	var rt worker.Runtime
	switch *runtime {
	case "process":
		rt = &worker.Process{ActionsDir: *actionsDir, WorkDir: filepath.Join(*workDir, "actions"), Output: stderr}
	case "docker":
		dc, err := dockerclient.New(dockerclient.FromEnv)
		if err != nil {
			return fmt.Errorf("docker client: %w", err)
		}
		defer dc.Close()
		d := &worker.Docker{Client: dc, Worker: *id, Pull: policy, Unprivileged: !*privileged, StopTimeout: *stopTimeout, Output: stderr, Log: log}
		if err := waitForEngine(ctx, d, log); err != nil {
			return nil // stopped while waiting
		}
		rt = d
	default:
		return fmt.Errorf("--runtime %q: want process or docker", *runtime)
	}
	c, err := client.New(*server, *token, nil)
	if err != nil {
		return err
	}
	w := &worker.Worker{ID: *id, Server: apiServer{c}, Runtime: rt, WorkDir: *workDir, Log: log, Wait: *wait}
	log.Info("tink-worker started", "server", *server, "runtime", *runtime)
	return w.Run(ctx)
}

// waitForEngine waits until the Docker Engine answers before the worker
// asks for work: on a machine that boots into the worker, the engine may
// start after it, and an action handed out meanwhile would fail for
// nothing. It returns only when the engine answers or ctx ends.
func waitForEngine(ctx context.Context, d *worker.Docker, log *slog.Logger) error {
	backoff := 500 * time.Millisecond
	for {
		v, err := d.Ping(ctx)
		if err == nil {
			log.Info("docker engine ready", "host", d.Client.DaemonHost(), "api", v)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("docker engine not answering; waiting", "host", d.Client.DaemonHost(), "err", err, "retry in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// apiServer speaks the worker protocol through the API client.
type apiServer struct{ c *client.Client }

func (s apiServer) Next(ctx context.Context, id string, wait time.Duration) (*worker.Action, error) {
	return s.c.NextAction(ctx, id, wait)
}

func (s apiServer) Report(ctx context.Context, id string, r worker.Report) error {
	return s.c.ReportAction(ctx, id, r)
}

// Rejected: the server refused the report for good (409) or it can never
// be valid (400); anything else (the server away, 5xx) is retried.
func (s apiServer) Rejected(err error) bool {
	code := state.ErrorCode(err)
	return code == state.ECONFLICT || code == state.EINVALID || code == state.ENOTFOUND
}
