// Command tink-worker runs on a machine being provisioned: it asks
// tink-server for the machine's next action, runs it, and reports how it
// went, until it is stopped.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	dockerclient "github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env returns the environment variable's value, or def.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// options are tink-worker's settings, from flags, the kernel command line
// and the environment.
type options struct {
	server, id, token, runtime, pull, workDir, actionsDir, cmdline string
	privileged                                                     bool
	stopTimeout, wait                                              time.Duration
}

// run executes tink-worker with explicit streams, so tests drive it
// in-process; it returns the exit code (0 after --help, 2 on bad usage or
// a failure to start, as tink does).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand(stderr)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "tink-worker:", err)
		return 2
	}
	return 0
}

// newCommand builds the command; each call gives fresh flags.
func newCommand(logTo io.Writer) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "tink-worker",
		Short: "Run this machine's workflow actions for tink-server",
		Long: `tink-worker runs on a machine being provisioned: it asks tink-server for the
machine's next action, runs it, and reports how it went, until it is stopped.

Settings come from, highest first: the command line, the kernel command line
(--cmdline: worker_id=, tink_server=, as tinkops's iPXE script writes them),
the environment (TINK_*), the defaults.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromKernel(cmd.Flags().Changed); err != nil {
				return err
			}
			return o.serve(cmd.Context(), logTo)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", env("TINK_SERVER", "http://127.0.0.1:42113"), "tink-server URL (env TINK_SERVER; kernel line tink_server=)")
	f.StringVar(&o.id, "id", env("TINK_WORKER_ID", ""), "this machine: its hardware name or a MAC (env TINK_WORKER_ID; kernel line worker_id=, else hw_addr=)")
	f.StringVar(&o.token, "token", "", "worker token (env TINK_TOKEN; prefer the environment: arguments are visible in ps)")
	f.StringVar(&o.runtime, "runtime", env("TINK_RUNTIME", "process"), "how actions run: process (on the host) or docker (containers through the Docker Engine; DOCKER_HOST, default /var/run/docker.sock) (env TINK_RUNTIME)")
	f.StringVar(&o.pull, "pull", env("TINK_PULL", string(worker.PullIfNotPresent)), "docker runtime: when to pull an action's image: always, if-not-present or never (env TINK_PULL)")
	f.BoolVar(&o.privileged, "privileged", true, "docker runtime: run actions privileged, as Tinkerbell does; false for an engine that cannot grant every capability")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "docker runtime: how long a timed-out action gets between SIGTERM and SIGKILL")
	f.StringVar(&o.workDir, "work-dir", env("TINK_WORK_DIR", filepath.Join(os.TempDir(), "tink-worker")), "working directories of actions and undelivered reports (env TINK_WORK_DIR)")
	f.StringVar(&o.actionsDir, "actions-dir", env("TINK_ACTIONS_DIR", ""), "process runtime: where an action without a command finds the executable named after its image (quay.io/tinkerbell/actions/image2disk:v1 runs DIR/image2disk) (env TINK_ACTIONS_DIR)")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long one request for work waits")
	f.StringVar(&o.cmdline, "cmdline", env("TINK_CMDLINE", ""), "read worker_id= and tink_server= from this kernel command line file (/proc/cmdline), so one boot image fits every machine (env TINK_CMDLINE)")
	return cmd
}

// serve runs the worker until ctx ends.
func (o *options) serve(ctx context.Context, logTo io.Writer) error {
	if o.token == "" {
		o.token = os.Getenv("TINK_TOKEN")
	}
	if o.id == "" {
		return errors.New("--id is required: the hardware name or a MAC of this machine (or --cmdline with worker_id=)")
	}
	if err := os.MkdirAll(o.workDir, 0o700); err != nil {
		return fmt.Errorf("--work-dir: %w", err)
	}
	policy, err := worker.ParsePullPolicy(o.pull)
	if err != nil {
		return fmt.Errorf("--pull: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logTo, nil)).With("worker", o.id)
	var rt worker.Runtime
	switch o.runtime {
	case "process":
		rt = &worker.Process{ActionsDir: o.actionsDir, WorkDir: filepath.Join(o.workDir, "actions"), Output: logTo}
	case "docker":
		dc, err := dockerclient.New(dockerclient.FromEnv)
		if err != nil {
			return fmt.Errorf("docker client: %w", err)
		}
		defer dc.Close()
		d := &worker.Docker{Client: dc, Worker: o.id, Pull: policy, Unprivileged: !o.privileged, StopTimeout: o.stopTimeout, Output: logTo, Log: log}
		if err := waitForEngine(ctx, d, log); err != nil {
			return nil // stopped while waiting
		}
		rt = d
	default:
		return fmt.Errorf("--runtime %q: want process or docker", o.runtime)
	}
	c, err := client.New(o.server, o.token, nil)
	if err != nil {
		return err
	}
	w := &worker.Worker{ID: o.id, Server: apiServer{c}, Runtime: rt, WorkDir: o.workDir, Log: log, Wait: o.wait}
	log.Info("tink-worker started", "server", o.server, "runtime", o.runtime)
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

// Report delivers a report; one that ends an action also asks for the
// next action in the same request.
func (s apiServer) Report(ctx context.Context, id string, r worker.Report) (*worker.Action, error) {
	switch r.State {
	case state.RunSuccess, state.RunFailed, state.RunTimeout:
		return s.c.ReportActionNext(ctx, id, r)
	}
	return nil, s.c.ReportAction(ctx, id, r)
}

// Rejected: the server refused the report for good (409) or it can never
// be valid (400); anything else (the server away, 5xx) is retried.
func (s apiServer) Rejected(err error) bool {
	code := state.ErrorCode(err)
	return code == state.ECONFLICT || code == state.EINVALID || code == state.ENOTFOUND
}
