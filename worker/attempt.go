package worker

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// An action may be destructive (wipe a disk, write a partition table), so
// the process runtime never runs one attempt twice. A worker killed while
// an action runs is handed the same attempt again when it comes back, and
// unlike a container, a process it did not start cannot be waited for or
// asked how it ended. So each attempt's working directory records that the
// attempt began (before its process starts), the process (pid and start
// time), and how it ended. Handed an attempt again, the runtime:
//
//   - reports the recorded result when the attempt had finished;
//   - otherwise stops what is left of the attempt's process group (the
//     action outlived its worker) and reports the attempt FAILED as
//     interrupted, without running it again. The template's `retries`
//     then decide: a new attempt runs from the start if retries remain.
const (
	markFile   = ".tink-attempt.json"
	resultFile = ".tink-result.json"
)

// attemptMark is what the runtime knows of an attempt's process; zero PID
// means it was about to start.
type attemptMark struct {
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"startTime,omitempty"` // clock ticks since boot, /proc/PID/stat field 22
}

func writeMark(dir string, m attemptMark) error {
	return writeJSONFile(filepath.Join(dir, markFile), m)
}

func writeResult(dir string, r Result) error {
	return writeJSONFile(filepath.Join(dir, resultFile), r)
}

// writeJSONFile replaces a file whole (a crash leaves the old or the new).
func writeJSONFile(p string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// earlier reports what became of an attempt a previous worker process
// began in dir; ok is false when none did.
func (p *Process) earlier(dir string) (Result, bool) {
	b, err := os.ReadFile(filepath.Join(dir, markFile))
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, false
	}
	now := time.Now()
	if rb, err := os.ReadFile(filepath.Join(dir, resultFile)); err == nil {
		var res Result
		if json.Unmarshal(rb, &res) == nil && res.State != "" {
			res.Message = joinLines(res.Message, "(this attempt had ended before the worker restarted; it was not run again)")
			return res, true
		}
	}
	var m attemptMark
	_ = json.Unmarshal(b, &m)
	msg := "the worker was restarted while this attempt ran"
	// The action may have outlived its worker: stop it and its children
	// (they share its process group), so that a retry does not run beside
	// it. The recorded pid finds it; so does its working directory, which
	// is the attempt's own (the worker may have died before recording the
	// pid).
	groups := map[int]bool{}
	if m.PID > 0 && m.StartTime != 0 && processStart(m.PID) == m.StartTime {
		groups[m.PID] = true
	}
	for _, pg := range groupsIn(dir) {
		groups[pg] = true
	}
	if len(groups) > 0 {
		for pg := range groups {
			_ = syscall.Kill(-pg, syscall.SIGKILL)
		}
		for i := 0; i < 100 && len(groupsIn(dir)) > 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		msg += "; what was left of it was still running and was stopped"
	}
	return Result{State: "FAILED", Started: now, Finished: now,
		Message: msg + "; the attempt is not run again (an action may be destructive): the template's retries decide whether a new attempt runs"}, true
}

// groupsIn returns the process groups of the live processes whose working
// directory is dir, read from /proc.
func groupsIn(dir string) []int {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	} else if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || cwd != dir {
			continue
		}
		if pg, ok := processGroup(pid); ok && pg > 1 {
			out = append(out, pg)
		}
	}
	return out
}

// processGroup reads a live process's group from /proc/PID/stat.
func processGroup(pid int) (int, bool) {
	f := statFields(pid)
	// f[0] is field 3 (state), f[2] field 5 (pgrp).
	if len(f) < 3 || f[0] == "Z" {
		return 0, false
	}
	pg, err := strconv.Atoi(f[2])
	return pg, err == nil
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses), from field 3 on.
func statFields(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// processStart reads when process pid started, so that a recorded pid is
// not mistaken for another process that reuses it; 0 if unknown (no such
// process, or no /proc).
func processStart(pid int) uint64 {
	f := statFields(pid)
	// f[0] is field 3 (state); the start time is field 22. A zombie has
	// ended: its group is gone but for the reaping.
	if len(f) < 20 || f[0] == "Z" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
