package badger_test

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// The crash tests run the test binary itself as a child process (see
// TestHelperProcess) that writes to a state directory, kill it with SIGKILL,
// reopen the directory here and check it: every batch the child reported as
// acknowledged is there in full, and no batch is there in part.

const (
	envChild = "TINK_STATE_CRASH_DIR"  // set in the child: the directory
	envMode  = "TINK_STATE_CRASH_MODE" // "random" or "die:<hook point>"
	envBase  = "TINK_STATE_CRASH_BASE" // first batch id of the child
	// envIterations sets how many times TestCrash kills a child (default
	// 20; the long run uses 200).
	envIterations = "TINK_CRASH_ITERATIONS"
)

// crashOptions are the child's options: transactions small enough that every
// fourth batch is split, to crash inside split commits too.
func crashOptions() badger.Options {
	return badger.Options{MaxTxnBytes: 16 << 10, CompactInterval: -1, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)}
}

// crashBatch is batch id as the child writes it: every fourth is large (and
// split), the others have 1 to 5 objects; each has a run and a sync event.
func crashBatch(id int) *state.Batch {
	var b *state.Batch
	if id%4 == 0 {
		b = bigBatch(id, 40, 400)
	} else {
		b = bigBatch(id, 1+id%5, 0)
	}
	b.Runs = []*state.WorkflowRun{{Workflow: fmt.Sprintf("wf-%06d", id), Number: 1, State: state.RunPending}}
	return b
}

// TestHelperProcess is the child of the crash tests; it does nothing unless
// started by one.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(envChild)
	if dir == "" {
		t.Skip("only runs as the child of a crash test")
	}
	mode := os.Getenv(envMode)
	var hook func(string)
	if point, ok := strings.CutPrefix(mode, "die:"); ok {
		hook = func(p string) {
			if p == point {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	s, err := badger.OpenWithHook(context.Background(), dir, crashOptions(), hook)
	if err != nil {
		fmt.Fprintln(os.Stdout, "open error:", err)
		os.Exit(2)
	}
	base, _ := strconv.Atoi(os.Getenv(envBase))
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
	say("ready")
	if mode != "random" {
		if _, err := s.Apply(context.Background(), crashBatch(base)); err != nil {
			say("apply error: %v", err)
			os.Exit(2)
		}
		say("ack %d", base)
		os.Exit(0)
	}
	var next atomic.Int64
	next.Store(int64(base))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := int(next.Add(1) - 1)
				if _, err := s.Apply(context.Background(), crashBatch(id)); err != nil {
					say("apply error: %v", err)
					os.Exit(2)
				}
				say("ack %d", id)
			}
		}()
	}
	wg.Wait()
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	ready chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	acked []int
	lines []string
}

func startChild(t *testing.T, dir, mode string, base int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envMode+"="+mode, envBase+"="+strconv.Itoa(base))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.lines = append(c.lines, line)
			if id, ok := strings.CutPrefix(line, "ack "); ok {
				n, _ := strconv.Atoi(id)
				c.acked = append(c.acked, n)
			}
			c.mu.Unlock()
			if line == "ready" {
				close(c.ready)
			}
		}
	}()
	return c
}

// wait waits for the child to exit (after a kill, or by itself) and returns
// the batches it acknowledged. Lines printed before it died are all read,
// since the pipe outlives the process.
func (c *child) wait(t *testing.T) []int {
	t.Helper()
	_ = c.cmd.Wait()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		require.False(t, strings.Contains(l, "error"), "child: %s", l)
	}
	return c.acked
}

func (c *child) kill() { _ = c.cmd.Process.Signal(syscall.SIGKILL) }

// verify reopens dir and checks it against the batches acknowledged so far:
// each is there in full, every batch that is there is there in full (objects,
// run and events), and the event log has no holes.
func verify(t *testing.T, dir string, acked map[int]bool) (finished, discarded uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := badger.Open(ctx, dir, crashOptions())
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	finished, discarded = s.Stats().Finished.Load(), s.Stats().Discarded.Load()

	objects := map[int]int{}
	page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	for _, o := range page.Objects {
		id, _ := strconv.Atoi(o.Labels["batch"])
		objects[id]++
	}
	for id, n := range objects {
		require.Equal(t, crashSize(id), n, "batch %d is there in part", id)
	}
	for id := range acked {
		require.Contains(t, objects, id, "acknowledged batch %d is lost", id)
	}

	runs, err := s.ListRuns(ctx, state.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs.Runs, len(objects))
	for _, r := range runs.Runs {
		id, _ := strconv.Atoi(strings.TrimPrefix(r.Workflow, "wf-"))
		require.Contains(t, objects, id, "run of batch %d without its objects", id)
	}

	evs, err := s.Events(ctx, state.EventQuery{Limit: 1 << 30})
	require.NoError(t, err)
	created, syncs := map[int]int{}, map[int]int{}
	for i, ev := range evs {
		require.Equal(t, uint64(i+1), ev.Seq, "the event log has a hole")
		switch ev.Type {
		case state.EventCreated:
			id, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(ev.Name, "-")[0], "b"))
			created[id]++
		case state.EventSync:
			id, _ := strconv.Atoi(strings.TrimPrefix(ev.Message, "batch "))
			syncs[id]++
		}
	}
	require.Equal(t, len(objects), len(syncs))
	for id, n := range objects {
		require.Equal(t, n, created[id], "events of batch %d", id)
		require.Equal(t, 1, syncs[id], "sync event of batch %d", id)
	}
	return finished, discarded
}

func crashSize(id int) int { return len(crashBatch(id).Objects) }

// TestCrash kills a writing child at random moments, TINK_CRASH_ITERATIONS
// times (default 20). A directory is reused for five kills in a row, so
// later children also start by recovering from a crash, and some are killed
// while they recover.
func TestCrash(t *testing.T) {
	iterations := 20
	if v := os.Getenv(envIterations); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, envIterations)
		iterations = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))

	var dir string
	var acked map[int]bool
	var total, early int
	var finished, discarded uint64
	for it := range iterations {
		if it%5 == 0 {
			dir = t.TempDir()
			acked = map[int]bool{}
		}
		c := startChild(t, dir, "random", it*1_000_000)
		if rnd.IntN(8) == 0 {
			// Anywhere from start-up to the first writes, recovery
			// included.
			early++
			time.Sleep(time.Duration(rnd.IntN(60)) * time.Millisecond)
		} else {
			select {
			case <-c.ready:
			case <-time.After(30 * time.Second):
				c.kill()
				t.Fatalf("iteration %d: child did not start: %v", it, c.wait(t))
			}
			if it == 0 {
				// While the child holds the directory, another process
				// cannot open it, and is told so at once.
				_, err := badger.Open(context.Background(), dir, crashOptions())
				require.Equal(t, state.ECONFLICT, state.ErrorCode(err), "%v", err)
				require.Contains(t, state.ErrorMessage(err), dir)
			}
			time.Sleep(time.Duration(rnd.IntN(150)) * time.Millisecond)
		}
		c.kill()
		ids := c.wait(t)
		for _, id := range ids {
			acked[id] = true
		}
		total += len(ids)
		f, d := verify(t, dir, acked)
		finished += f
		discarded += d
	}
	t.Logf("%d kills (%d early, %d inside a split batch: %d committed and finished, %d discarded), %d acknowledged batches verified",
		iterations, early, finished+discarded, finished, discarded, total)
}

// TestCrashInLargeBatch crashes a child at each step of a split commit, and
// once more while the next child recovers, and checks that the batch is
// absent before its commit record and complete after it.
func TestCrashInLargeBatch(t *testing.T) {
	for _, tt := range []struct {
		point   string
		present bool
	}{
		{"split:staged", false},
		{"split:marked", true},
		{"split:applied:1", true},
		{"split:done", true},
	} {
		t.Run(tt.point, func(t *testing.T) {
			dir := t.TempDir()
			c := startChild(t, dir, "die:"+tt.point, 0)
			require.Empty(t, c.wait(t), "the child died before acknowledging")
			verifyBatch(t, dir, tt.present)
		})
	}
	t.Run("recover:applied:1", func(t *testing.T) {
		dir := t.TempDir()
		c := startChild(t, dir, "die:split:applied:1", 0)
		require.Empty(t, c.wait(t))
		// The next child dies halfway through finishing the batch.
		c = startChild(t, dir, "die:recover:applied:1", 4)
		require.Empty(t, c.wait(t))
		verifyBatch(t, dir, true)
	})
}

// verifyBatch checks that batch 0 is in dir in full, or not at all.
func verifyBatch(t *testing.T, dir string, present bool) {
	t.Helper()
	acked := map[int]bool{}
	if present {
		acked[0] = true
	}
	verify(t, dir, acked)
	s := MustOpen(t, dir, crashOptions())
	page, err := s.ListObjects(context.Background(), state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	if present {
		require.Len(t, page.Objects, crashSize(0))
	} else {
		require.Empty(t, page.Objects)
	}
	_, err = os.Stat(filepath.Join(dir, "REDO"))
	require.ErrorIs(t, err, fs.ErrNotExist, "Open removed the batch's chunks")
}
