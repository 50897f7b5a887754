// Command tink is the tinkops command line: Tinkerbell's hardware, template
// and workflow commands, plus validate for pull requests.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// A validation allocates ~100 KB per object that dies at once:
		// collecting less often saves a fifth of the time of a large
		// repository for a short-lived command (see BENCHMARKS.md).
		debug.SetGCPercent(400)
	}
	// No memory limit: with GOGC=400 a 100,000-machine fleet (~600 MB
	// live) peaks at 2.1-2.3 GB RSS, and a soft limit trades that for CPU
	// (1 GiB: 18.7 s against 14.3 s, 1.07 GB; 2 GiB: 16.8 s, 2.0 GB),
	// where the time is what a pull request waits for.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a process exit code through cobra without printing
// anything more: the command has already said what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the CLI with explicit streams so tests drive it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintln(stderr, "tink:", err)
		return 2
	}
}
