package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TailSize is how much of an action's output goes into its report; the
// rest goes to the worker's log.
const TailSize = 4 << 10

// Process runs actions as processes on the host: the action's command
// (argv), or, when it has none, an executable named after the image in
// ActionsDir. Each action gets a working directory of its own under
// WorkDir.
type Process struct {
	ActionsDir string
	WorkDir    string
	// Output receives the whole output of every action (the worker's log).
	Output io.Writer
}

// Run runs one action with its environment and timeout.
func (p *Process) Run(ctx context.Context, a *Action) Result {
	start := time.Now()
	fail := func(format string, args ...any) Result {
		return Result{State: "FAILED", Message: fmt.Sprintf(format, args...), Started: start, Finished: time.Now()}
	}
	argv := a.Command
	if len(argv) == 0 {
		name := a.Image
		if i := strings.LastIndexAny(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		name, _, _ = strings.Cut(name, ":")
		name, _, _ = strings.Cut(name, "@")
		if p.ActionsDir == "" {
			return fail("action has no command and no actions directory is configured for image %s", a.Image)
		}
		argv = []string{filepath.Join(p.ActionsDir, name)}
	}
	dir := filepath.Join(p.WorkDir, fmt.Sprintf("%s-%d-%d-%d", safe(a.Workflow), a.Run, a.Action, a.Attempt))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("create working directory: %v", err)
	}
	if res, ok := p.earlier(dir); ok {
		return res
	}
	// The mark is written before the process starts: a worker killed from
	// here on never starts this attempt again.
	if err := writeMark(dir, attemptMark{}); err != nil {
		return fail("record the attempt: %v", err)
	}
	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if a.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, time.Duration(a.Timeout)*time.Second)
	}
	defer cancel()
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = environ(a.Environment)
	// The action's own children die with it on a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	tail := &tailBuffer{max: TailSize}
	out := io.Writer(tail)
	if p.Output != nil {
		out = io.MultiWriter(tail, p.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Start()
	if err == nil {
		if merr := writeMark(dir, attemptMark{PID: cmd.Process.Pid, StartTime: processStart(cmd.Process.Pid)}); merr != nil {
			fmt.Fprintf(out, "record the attempt's process: %v\n", merr)
		}
		err = cmd.Wait()
	}
	res := Result{State: "SUCCESS", Message: tail.String(), Started: start, Finished: time.Now()}
	switch {
	case err == nil:
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		res.State = "TIMEOUT"
		res.Message = joinLines(res.Message, fmt.Sprintf("timed out after %ds", a.Timeout))
	default:
		res.State = "FAILED"
		res.Message = joinLines(res.Message, err.Error())
	}
	if ctx.Err() == nil {
		// Kept for a worker restarted before the report reached the
		// server: it finds the attempt finished and reports this result.
		_ = writeResult(dir, res)
	}
	return res
}

// joinLines appends a line to output, which may or may not end in one.
func joinLines(output, line string) string {
	output = strings.TrimRight(output, "\n")
	if output == "" {
		return line
	}
	return output + "\n" + line
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, s)
}

// environ gives the action its environment on top of a minimal one: the
// worker's own secrets (its token) never reach actions.
func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=/tmp"}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
