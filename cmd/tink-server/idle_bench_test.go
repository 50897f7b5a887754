package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/schema/schematest"
)

// Idle, the runtime collects at least every two minutes; the RSS is read
// scavengeWait after the first collection once the server is quiet, when
// the background scavenger has returned what that collection freed beyond
// the heap goal. idleGCWait bounds the wait for that collection.
const (
	scavengeWait = 10 * time.Second
	idleGCWait   = 3 * time.Minute
)

// gcLine is a line of GODEBUG=gctrace=1: "gc 12 @3.4s ...: 100->120->60 MB,
// 130 MB goal, ...": the heap before and after marking, what was live, and
// the next goal.
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @[^:]*:.* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// A server is quiet when it used at most quietTicks of CPU (1/100 s each)
// in each of quietWindows seconds in a row. Not zero: an engine holding
// 10,000 runs that wait for their workers still looks at them on its
// ticks (about 9 ticks a second at 10,000 machines, reported as
// idle-cpu-%).
const (
	quietTicks   = 25
	quietWindows = 3
)

// BenchmarkIdleRSS measures issue 21's idle target: the real tink-server
// binary (built as shipped, CGO_ENABLED=0), as its own process so that
// its RSS is its own, following a repository served by git daemon with
// the durable Badger store. Reported: s/full-sync, from the process's start
// to the first revision applied (store open, fetch, load, plan, apply),
// s/runs-started, from then until the engine has started every
// workflow's run (rendered and written RUNNING; polled every half
// second, every 2 s at 100k), and idle-RSS-MiB, the process's VmRSS once the engine has started and
// prepared every workflow's run, the server is quiet and the runtime has
// collected and returned memory (goal under 300 MiB at 10k). The server
// runs with GODEBUG=gctrace=1 to tell when it collected; the log shows
// the heap live after that collection. 100k (100,000 hardware and workflows) shows the
// cost as the fleet grows: each figure within 12x of 10k's.
//
// Each size is set up and measured once per call, whatever b.N: a full
// sync of 100,000 machines is not a loop body.
func BenchmarkIdleRSS(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "tink-server")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(b, err, "%s", out)
	for _, size := range []struct {
		name     string
		machines int
	}{{"10k", 10_000}, {"100k", 100_000}} {
		b.Run(size.name, func(b *testing.B) {
			repo := gittest.NewRepo(b)
			head := importFleet(b, repo.Bare, withoutNetboot(b, schematest.Fleet(size.machines, 100)))
			daemon := gittest.ServeDaemon(b, repo.Base)
			idle := runIdle(b, bin, daemon.URL+repo.Name, "main@sha1:"+head, size.machines)
			b.ReportMetric(idle.sync.Seconds(), "s/full-sync")
			b.ReportMetric(float64(idle.rss)/(1<<20), "idle-RSS-MiB")
			b.ReportMetric(idle.idleCPU, "idle-cpu-%")
			b.ReportMetric(idle.started.Seconds(), "s/runs-started")
			b.Logf("%d machines: full sync %s, every run started %s later, settled %s later; idle %s", size.machines,
				idle.sync.Round(time.Millisecond), idle.started.Round(time.Millisecond), idle.settle.Round(time.Millisecond), idle.memory)
		})
	}
}

// withoutNetboot drops the netboot bootOptions of the fleet's workflows:
// their BMCs answer nowhere here, and a server retrying 100,000 power calls
// with backoff is never idle. Each run then waits for its worker, as a
// fleet between provisioning waves does.
func withoutNetboot(b *testing.B, files map[string]string) map[string]string {
	const boot = "  bootOptions:\n    toggleAllowNetboot: true\n    bootMode: netboot\n"
	for name, content := range files {
		if strings.HasPrefix(name, "workflows/") {
			require.Contains(b, content, boot, "the fleet's workflows netboot")
			files[name] = strings.Replace(content, boot, "", 1)
		}
	}
	return files
}

// idleFigures is what runIdle measured.
type idleFigures struct {
	sync, settle time.Duration
	// started is how long after the sync every run had started.
	started time.Duration
	rss     int64
	// idleCPU is the share of one core the quiet server used, in percent.
	idleCPU float64
	// memory is the process's memory lines of /proc/PID/status, for the
	// log: anonymous (heap) against file-backed (Badger's mmapped tables).
	memory string
}

// runIdle starts bin on repo with a fresh data directory, waits until rev
// is applied and every one of the machines' workflows has a run, leaves it
// quiet until the runtime collected and scavenged, and reads its RSS.
func runIdle(b *testing.B, bin, repo, rev string, machines int) idleFigures {
	b.Helper()
	data := b.TempDir()
	// 100,000 machines declare 200,100 objects, beyond the default limit,
	// and their sync may take longer than the default --sync-timeout (2m)
	// on a loaded machine.
	timeout := time.Duration(max(1, machines/10_000)) * 10 * time.Minute
	cmd := exec.Command(bin, "--repo", repo, "--listen", "127.0.0.1:0", "--data-dir", data,
		"--poll-interval", "1h", "--log-format", "json", "--log-level", "warn",
		"--max-objects", strconv.Itoa(2*machines+100), "--sync-timeout", timeout.String())
	stderr, err := os.Create(filepath.Join(b.TempDir(), "stderr"))
	require.NoError(b, err)
	defer stderr.Close()
	cmd.Stderr = stderr
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	start := time.Now()
	require.NoError(b, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(b, err)
	addr := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	require.NotNil(b, addr, line)
	base := addr[1]
	logs := func() string { s, _ := os.ReadFile(stderr.Name()); return string(s) }

	// /readyz answers 200 once the first sync finished or failed; the
	// status then tells which.
	// Ten minutes for each 10,000 machines (timeout): the sync and the
	// engine's preparing of every run, on a loaded 2-core machine.
	waitFor(b, timeout, 20*time.Millisecond, logs, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var f idleFigures
	f.sync = time.Since(start)
	b.Logf("%d machines: first revision applied %s after the start", machines, f.sync.Round(time.Millisecond))
	st := serverStatus(b, base)
	require.Equal(b, rev, st.Sync.LastAppliedRevision, "first sync: %+v\n%s", st.Sync, logs())
	require.Equal(b, machines, st.Objects["Hardware"]["git"], "%v", st.Objects)

	// The engine starts every workflow's run after the sync, then prepares
	// each (BMC steps, inputs): settled once every workflow has a run, the
	// event log stopped growing and the process is quiet for quietWindows
	// seconds in a row.
	settled := time.Now()
	// Settling is bounded apart from the sync: a server that never goes
	// quiet fails here in minutes, not after the whole timeout.
	settleTimeout := min(timeout, 10*time.Minute)
	// The engine starts every run (renders its template and writes it
	// RUNNING): started once none waits. A status of 100,000 machines
	// took 0.3 s of CPU to build (a profile of the settling server: 1.5 s
	// in five requests), so it is asked for every 2 s there, lest the
	// asking slow what it times.
	poll := time.Duration(max(1, machines/25_000)) * 500 * time.Millisecond
	waitFor(b, settleTimeout, poll, logs, func() bool {
		st := serverStatus(b, base)
		runs := runCount(st)
		return runs == machines && st.Workflows["PENDING"] == 0
	})
	f.started = time.Since(settled)
	// First every workflow has a run and the event log stopped growing
	// (asked of the API every few seconds), then, asking nothing more (a
	// status of 100,000 machines is itself work), the process is quiet.
	var latest uint64
	stable := 0
	waitFor(b, settleTimeout, 3*time.Second, logs, func() bool {
		st := serverStatus(b, base)
		runs := runCount(st)
		if runs == machines && st.Events.Latest == latest {
			stable++
		} else {
			stable = 0
		}
		latest = st.Events.Latest
		return stable == 2
	})
	quiet, cpu := 0, procCPUTicks(b, cmd.Process.Pid)
	waitFor(b, settleTimeout, time.Second, logs, func() bool {
		now := procCPUTicks(b, cmd.Process.Pid)
		if now-cpu <= quietTicks {
			quiet++
		} else {
			quiet = 0
		}
		cpu = now
		return quiet == quietWindows
	})
	f.settle = time.Since(settled)
	ticks, t0 := procCPUTicks(b, cmd.Process.Pid), time.Now()
	time.Sleep(5 * time.Second)
	f.idleCPU = float64(procCPUTicks(b, cmd.Process.Pid)-ticks) / time.Since(t0).Seconds() // ticks/s = % of a core
	gcs := len(gcLine.FindAllString(logs(), -1))
	waitFor(b, idleGCWait, time.Second, logs, func() bool { return len(gcLine.FindAllString(logs(), -1)) > gcs })
	time.Sleep(scavengeWait)
	all := gcLine.FindAllStringSubmatch(logs(), -1)
	last := all[len(all)-1]
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	require.NoError(b, err)
	f.rss = procStatusKB(b, status, "VmRSS") << 10
	f.memory = fmt.Sprintf("live heap %s MB (goal %s MB) after %d collections; VmRSS %d MiB (RssAnon %d MiB, RssFile %d MiB), VmHWM %d MiB",
		last[3], last[4], len(all), f.rss>>20, procStatusKB(b, status, "RssAnon")>>10, procStatusKB(b, status, "RssFile")>>10, procStatusKB(b, status, "VmHWM")>>10)
	f.memory += "; Badger files " + badgerFiles(b, data)
	return f
}

// runCount is how many workflows have a run, in any state.
func runCount(st client.Status) int {
	runs := 0
	for state, n := range st.Workflows {
		if state != "NONE" {
			runs += n
		}
	}
	return runs
}

// waitFor polls cond every tick until it holds, failing with the server's
// log after timeout.
func waitFor(b *testing.B, timeout, tick time.Duration, logs func() string, cond func() bool) {
	b.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(tick) {
		if time.Now().After(deadline) {
			b.Fatalf("not within %s; server log:\n%s", timeout, logs())
		}
	}
}

// serverStatus reads GET /v1/status.
func serverStatus(b *testing.B, base string) client.Status {
	b.Helper()
	resp, err := http.Get(base + "/v1/status")
	require.NoError(b, err)
	defer resp.Body.Close()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	var st client.Status
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// procCPUTicks is the CPU time a process used so far, user and system, in
// clock ticks (1/100 s).
func procCPUTicks(b *testing.B, pid int) int64 {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	require.Greater(b, len(fields), 12, "short /proc/%d/stat", pid)
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	require.NoError(b, err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	require.NoError(b, err)
	return utime + stime
}

// badgerFiles sums the disk blocks of Badger's files in dir by kind: its
// memtables' logs (.mem), tables (.sst) and value log (.vlog).
func badgerFiles(b *testing.B, dir string) string {
	b.Helper()
	sums := map[string]int64{}
	entries, err := os.ReadDir(dir)
	require.NoError(b, err)
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if ext != ".mem" && ext != ".sst" && ext != ".vlog" {
			continue
		}
		var st syscall.Stat_t
		require.NoError(b, syscall.Stat(filepath.Join(dir, e.Name()), &st))
		sums[ext] += st.Blocks * 512
	}
	return fmt.Sprintf(".mem %d MiB, .sst %d MiB, .vlog %d MiB", sums[".mem"]>>20, sums[".sst"]>>20, sums[".vlog"]>>20)
}

// importFleet commits files as the main branch of the bare repository with
// git fast-import: a 100,000-machine fleet's 200,100 files in seconds, where
// writing them to a work tree and adding them takes minutes. It returns the
// commit's hash.
func importFleet(b *testing.B, bare string, files map[string]string) string {
	b.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var stream bytes.Buffer
	stream.WriteString("commit refs/heads/main\ncommitter Ada Lovelace <ada@example.com> 1700000000 +0000\ndata 5\nfleet\n")
	for _, name := range names {
		fmt.Fprintf(&stream, "M 100644 inline %s\ndata %d\n%s\n", name, len(files[name]), files[name])
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = bare
	cmd.Env = gittest.Env()
	cmd.Stdin = &stream
	out, err := cmd.CombinedOutput()
	require.NoError(b, err, "git fast-import: %s", out)
	return gittest.Git(b, bare, "rev-parse", "refs/heads/main")
}
