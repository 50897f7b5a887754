package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Labels the docker runtime puts on every container it creates. Together
// they name one attempt of one action on one machine, so a worker restarted
// mid-action finds the container it started instead of starting the action
// a second time, and an operator can list or clean up what tinkops ran
// (`docker ps -a --filter label=org.tinkops.worker`).
const (
	LabelWorker     = "org.tinkops.worker"
	LabelNamespace  = "org.tinkops.namespace"
	LabelWorkflow   = "org.tinkops.workflow"
	LabelRun        = "org.tinkops.run"
	LabelAction     = "org.tinkops.action"
	LabelAttempt    = "org.tinkops.attempt"
	LabelActionName = "org.tinkops.action-name"
)

// PullPolicy says when the docker runtime asks a registry for an action's
// image. Machines being provisioned often sit on networks where a registry
// is slow, rate-limited or absent, so the default uses what is present.
type PullPolicy string

// Pull policies, as the --pull flag of tink-worker spells them.
const (
	// PullAlways pulls before every action; when the pull fails and the
	// image is present, the present image is used (a registry outage does
	// not fail a provisioning run that can go on).
	PullAlways PullPolicy = "always"
	// PullIfNotPresent pulls only images that are absent (the default).
	PullIfNotPresent PullPolicy = "if-not-present"
	// PullNever never pulls: images must be preloaded (air-gapped sites).
	PullNever PullPolicy = "never"
)

// ParsePullPolicy checks a --pull value; "" is the default, if-not-present.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case "":
		return PullIfNotPresent, nil
	case PullAlways, PullIfNotPresent, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("pull policy %q: want always, if-not-present or never", s)
}

// Docker runs actions as containers through the Docker Engine API, the way
// Tinkerbell's agent does: the action's image with its command,
// environment and volumes (binds), its pid mode, privileged. Containers
// outlive the worker: when the worker stops mid-action the container goes
// on, and the next worker process, handed the same attempt again by the
// server, waits for it rather than starting the action twice.
type Docker struct {
	// Client speaks to the engine (client.New(client.FromEnv) honours
	// DOCKER_HOST; the default is /var/run/docker.sock).
	Client *client.Client
	// Worker is this worker's id (hardware name or MAC). It labels the
	// containers, so workers sharing an engine never adopt or clean up
	// each other's.
	Worker string
	// Pull is the pull policy; "" means if-not-present.
	Pull PullPolicy
	// Unprivileged runs actions with the engine's default capabilities.
	// Tinkerbell runs every action privileged (they partition disks, write
	// images, kexec) and so does tinkops by default; an engine that cannot
	// grant every capability (rootless, or inside a sandbox that withholds
	// some: runc then says "unable to apply caps") can run actions that need
	// no privilege with this set.
	Unprivileged bool
	// Output receives the whole output of every action (the worker's log);
	// the report carries only the last TailSize bytes.
	Output io.Writer
	Log    *slog.Logger
	// StopTimeout is how long a timed-out action gets between SIGTERM and
	// SIGKILL (default 10 s, Docker's own).
	StopTimeout time.Duration
	// CallTimeout bounds each short engine call: inspect, create, start,
	// remove (default 30 s).
	CallTimeout time.Duration
	// PullTimeout bounds one pull (default 30 min: actions such as
	// image2disk are small, but provisioning networks can be slow).
	PullTimeout time.Duration
	// MaxDuration stops an action that declares no timeout (default 24 h):
	// with no limit a container could run for ever after the server gave
	// up on its run.
	MaxDuration time.Duration
}

var _ Runtime = (*Docker)(nil)

func (d *Docker) stopTimeout() time.Duration { return orDefault(d.StopTimeout, 10*time.Second) }
func (d *Docker) callTimeout() time.Duration { return orDefault(d.CallTimeout, 30*time.Second) }
func (d *Docker) pullTimeout() time.Duration { return orDefault(d.PullTimeout, 30*time.Minute) }
func (d *Docker) maxDuration() time.Duration { return orDefault(d.MaxDuration, 24*time.Hour) }

func (d *Docker) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// call bounds one short engine call.
func (d *Docker) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.callTimeout())
}

// cleanup bounds a call that must happen even when ctx has ended (removing
// a container that never started, stopping one that timed out).
func (d *Docker) cleanup(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d.callTimeout()+extra)
}

// Ping asks the engine for its API version, which also settles the version
// the client speaks. tink-worker waits for it before asking for work, so a
// machine whose engine starts after the worker fails no action.
func (d *Docker) Ping(ctx context.Context) (string, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	p, err := d.Client.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", err
	}
	return p.APIVersion, nil
}

// Run runs one action in a container, or waits for the one a previous
// worker process started for the same attempt.
func (d *Docker) Run(ctx context.Context, a *Action) Result {
	start := time.Now()
	fail := func(format string, args ...any) Result {
		return Result{State: "FAILED", Message: fmt.Sprintf(format, args...), Started: start, Finished: time.Now()}
	}
	log := d.log().With("workflow", a.Workflow, "run", a.Run, "action", a.Name, "attempt", a.Attempt)
	labels := d.labels(a)
	found, err := d.find(ctx, labels)
	if err != nil {
		return fail("look for this action's container: %v", err)
	}
	var id string
	if found != nil {
		id = found.ID
		log.Info("found this action's container from before a restart; waiting for it", "container", shortID(id), "state", found.State)
	} else {
		d.sweep(ctx, labels)
		if err := d.ensureImage(ctx, a.Image); err != nil {
			return fail("%v", err)
		}
		if id, err = d.create(ctx, a, labels); err != nil {
			return fail("create container: %v", err)
		}
	}
	// A container found in state created was left by a worker that stopped
	// between create and start: the action never ran, so starting it now
	// runs it once.
	if found == nil || found.State == container.StateCreated {
		if err := d.start(ctx, id); err != nil {
			if ctx.Err() != nil {
				// The worker is stopping, and the engine may have started
				// the container all the same: the next worker decides.
				return d.abandoned(start, id)
			}
			d.remove(ctx, id)
			return fail("start container: %v%s", err, d.privilegeHint(err))
		}
		log.Info("container started", "container", shortID(id), "image", a.Image)
	}
	return d.wait(ctx, a, id, start)
}

func (d *Docker) labels(a *Action) map[string]string {
	return map[string]string{
		LabelWorker:     d.Worker,
		LabelNamespace:  a.Namespace,
		LabelWorkflow:   a.Workflow,
		LabelRun:        strconv.Itoa(a.Run),
		LabelAction:     strconv.Itoa(a.Action),
		LabelAttempt:    strconv.Itoa(a.Attempt),
		LabelActionName: a.Name,
	}
}

// identity is the labels that name an attempt; the action's name is there
// for people only.
func identity(labels map[string]string) client.Filters {
	f := client.Filters{}
	for _, k := range []string{LabelWorker, LabelNamespace, LabelWorkflow, LabelRun, LabelAction, LabelAttempt} {
		f.Add("label", k+"="+labels[k])
	}
	return f
}

// find returns this attempt's container, if one exists: the newest, and a
// running one before any other.
func (d *Docker) find(ctx context.Context, labels map[string]string) (*container.Summary, error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	res, err := d.Client.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: identity(labels)})
	if err != nil {
		return nil, err
	}
	if len(res.Items) == 0 {
		return nil, nil
	}
	items := res.Items
	sort.SliceStable(items, func(i, j int) bool {
		ri, rj := items[i].State == container.StateRunning, items[j].State == container.StateRunning
		if ri != rj {
			return ri
		}
		return items[i].Created > items[j].Created
	})
	return &items[0], nil
}

// sweep removes this worker's containers of other attempts. The server
// hands a machine one action at a time, so such a container belongs to an
// attempt the server gave up on (timed out, cancelled, retried while this
// worker was away); left running, a privileged action could write the same
// disk as the one about to start.
func (d *Docker) sweep(ctx context.Context, labels map[string]string) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	res, err := d.Client.ContainerList(cctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelWorker+"="+labels[LabelWorker])})
	if err != nil {
		d.log().Warn("list containers left by earlier actions", "err", err)
		return
	}
	for _, c := range res.Items {
		d.log().Warn("removing a container left by an earlier action", "container", shortID(c.ID), "state", c.State,
			"workflow", c.Labels[LabelWorkflow], "run", c.Labels[LabelRun], "action", c.Labels[LabelActionName], "attempt", c.Labels[LabelAttempt])
		d.remove(ctx, c.ID)
	}
}

// ensureImage applies the pull policy.
func (d *Docker) ensureImage(ctx context.Context, ref string) error {
	present, err := d.imagePresent(ctx, ref)
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	policy, err := ParsePullPolicy(string(d.Pull))
	if err != nil {
		return err
	}
	switch policy {
	case PullNever:
		if !present {
			return fmt.Errorf("image %s is not on this machine and the pull policy is never: preload it (docker load) or use --pull if-not-present", ref)
		}
		return nil
	case PullIfNotPresent:
		if present {
			return nil
		}
	}
	if err := d.pull(ctx, ref); err != nil {
		if present {
			d.log().Warn("pull failed; using the image already on this machine", "image", ref, "err", err)
			return nil
		}
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	return nil
}

func (d *Docker) imagePresent(ctx context.Context, ref string) (bool, error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.Client.ImageInspect(cctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// pull pulls an image; its error is the registry's message, as the engine
// relays it.
func (d *Docker) pull(ctx context.Context, ref string) error {
	pctx, cancel := context.WithTimeout(ctx, d.pullTimeout())
	defer cancel()
	d.log().Info("pulling image", "image", ref)
	resp, err := d.Client.ImagePull(pctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(pctx)
}

func (d *Docker) create(ctx context.Context, a *Action, labels map[string]string) (string, error) {
	cfg := &container.Config{
		Image:  a.Image,
		Cmd:    a.Command, // as Tinkerbell: the image's entrypoint stays
		Env:    containerEnv(a.Environment),
		Labels: labels,
	}
	host := &container.HostConfig{
		Binds:      a.Volumes,
		PidMode:    container.PidMode(a.Pid),
		Privileged: !d.Unprivileged,
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	res, err := d.Client.ContainerCreate(cctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host})
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// containerEnv is the action's environment only: unlike a process, a
// container does not inherit the worker's (and its token).
func containerEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

func (d *Docker) start(ctx context.Context, id string) error {
	cctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.Client.ContainerStart(cctx, id, client.ContainerStartOptions{})
	return err
}

// privilegeHint explains runc's "unable to apply caps" on a privileged
// container, which names neither the cause nor the way out.
func (d *Docker) privilegeHint(err error) string {
	if d.Unprivileged || !strings.Contains(err.Error(), "unable to apply caps") {
		return ""
	}
	return "\n(this engine cannot grant a privileged container every capability; if the actions need none, run tink-worker with --privileged=false)"
}

// remove removes a container, killing it if it still runs. It goes on
// when ctx has ended: a container the worker is done with must not stay.
func (d *Docker) remove(ctx context.Context, id string) {
	cctx, cancel := d.cleanup(ctx, 0)
	defer cancel()
	if _, err := d.Client.ContainerRemove(cctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log().Warn("remove container", "container", shortID(id), "err", err)
	}
}

// wait waits for the container to end, within the action's timeout counted
// from when the container started (so a restarted worker does not grant a
// second full timeout), collects its output and removes it.
func (d *Docker) wait(ctx context.Context, a *Action, id string, start time.Time) Result {
	started := start
	cctx, cancel := d.call(ctx)
	info, err := d.Client.ContainerInspect(cctx, id, client.ContainerInspectOptions{})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return d.abandoned(start, id)
		}
		d.remove(ctx, id)
		return Result{State: "FAILED", Message: fmt.Sprintf("inspect container: %v", err), Started: start, Finished: time.Now()}
	}
	ended := false // before this worker came back to it
	var code int64
	if s := info.Container.State; s != nil {
		if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && !t.IsZero() {
			started = t
		}
		if s.Status == container.StateExited || s.Status == container.StateDead {
			// Judged by its exit code even past its deadline: it ran to
			// its end, and the server's own timer had the say on time.
			ended, code = true, int64(s.ExitCode)
		}
	}
	limit, timeoutNote := d.maxDuration(), fmt.Sprintf("stopped after %s: the action declares no timeout", d.maxDuration())
	if a.Timeout > 0 {
		limit, timeoutNote = time.Duration(min(a.Timeout, math.MaxInt64/int64(time.Second)))*time.Second, fmt.Sprintf("timed out after %ds", a.Timeout)
	}
	deadline := started.Add(limit)

	tail := &tailBuffer{max: TailSize}
	out := io.Writer(tail)
	if d.Output != nil {
		out = io.MultiWriter(tail, d.Output)
	}
	// The logs follow the container live, so the worker's log shows an
	// action's progress while it runs; the stream ends when it exits.
	logsDeadline := deadline.Add(d.stopTimeout() + d.callTimeout())
	if ended {
		logsDeadline = time.Now().Add(d.callTimeout())
	}
	logsCtx, stopLogs := context.WithDeadline(ctx, logsDeadline)
	defer stopLogs()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		d.copyLogs(logsCtx, id, out)
	}()
	finishLogs := func() {
		select {
		case <-logsDone:
		case <-time.After(5 * time.Second): // output still arriving after exit: keep what came
			stopLogs()
			<-logsDone
		}
	}

	waitCtx, cancelWait := context.WithDeadline(ctx, deadline)
	defer cancelWait()
	var waitErr error
	if !ended {
		w := d.Client.ContainerWait(waitCtx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case r := <-w.Result:
			ended, code = true, r.StatusCode
			if r.Error != nil && r.Error.Message != "" {
				waitErr = errors.New(r.Error.Message)
			}
		case waitErr = <-w.Error:
		}
	}

	res := Result{Started: started}
	switch {
	case !ended && ctx.Err() != nil:
		// The worker is stopping: the container goes on, for the next
		// worker process to find. The worker does not report this.
		stopLogs()
		<-logsDone
		return d.abandoned(started, id)
	case !ended && errors.Is(waitCtx.Err(), context.DeadlineExceeded):
		d.stop(ctx, id)
		finishLogs()
		res.State, res.Message = "TIMEOUT", joinLines(tail.String(), timeoutNote)
	case waitErr != nil:
		stopLogs()
		<-logsDone
		res.State, res.Message = "FAILED", joinLines(tail.String(), "wait for container: "+waitErr.Error())
	default:
		finishLogs()
		res.State, res.Message = "SUCCESS", tail.String()
		if code != 0 {
			res.State, res.Message = "FAILED", joinLines(res.Message, fmt.Sprintf("exit status %d", code))
		}
	}
	d.remove(ctx, id)
	res.Finished = time.Now()
	return res
}

// abandoned is the result of a run the worker stopped waiting for.
func (d *Docker) abandoned(started time.Time, id string) Result {
	return Result{State: "FAILED", Message: fmt.Sprintf("the worker stopped; container %s goes on for the next worker to wait for", shortID(id)),
		Started: started, Finished: time.Now()}
}

// stop stops a timed-out container: SIGTERM, and SIGKILL after
// StopTimeout, which the engine does; a kill of our own if the engine's
// stop did not answer in time.
func (d *Docker) stop(ctx context.Context, id string) {
	grace := int(math.Ceil(d.stopTimeout().Seconds()))
	sctx, cancel := d.cleanup(ctx, time.Duration(grace)*time.Second)
	defer cancel()
	_, err := d.Client.ContainerStop(sctx, id, client.ContainerStopOptions{Timeout: &grace})
	if err == nil || cerrdefs.IsNotFound(err) {
		return
	}
	d.log().Warn("stop timed-out container; killing it", "container", shortID(id), "err", err)
	kctx, cancel := d.cleanup(ctx, 0)
	defer cancel()
	if _, err := d.Client.ContainerKill(kctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log().Warn("kill timed-out container", "container", shortID(id), "err", err)
	}
}

// copyLogs copies the container's stdout and stderr, from its start, to w.
func (d *Docker) copyLogs(ctx context.Context, id string, w io.Writer) {
	rc, err := d.Client.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		if ctx.Err() == nil {
			d.log().Warn("read container output", "container", shortID(id), "err", err)
		}
		return
	}
	defer rc.Close()
	// Without a TTY the engine multiplexes stdout and stderr in frames;
	// both go to one writer, as the process runtime's do. The engine reads
	// the two through separate pipes, so lines written to both within
	// microseconds may swap.
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && ctx.Err() == nil {
		d.log().Warn("read container output", "container", shortID(id), "err", err)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
