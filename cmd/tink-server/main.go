// Command tink-server is the tinkops daemon: it reads the desired state from
// a repository, validates it, and serves the API on 127.0.0.1:42113.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tink-server:", err)
		os.Exit(1)
	}
}

// run parses flags, starts the server and blocks until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return m.Close()
}
