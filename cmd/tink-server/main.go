// Command tink-server is the tinkops daemon: it reads the desired state from
// a repository, validates it, and serves the API on 127.0.0.1:42113.
//
// `tink-server backup` and `tink-server restore` copy its state directory to
// and from a backup file; see runBackup and runRestore. `tink-server migrate`
// moves a site between Badger and PostgreSQL; see runMigrate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tink-server:", err)
		os.Exit(1)
	}
}

// run runs the subcommand args name, or else the server.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "backup":
			return helpIsNoError(runBackup(ctx, args[1:], stdout, stderr))
		case "restore":
			return helpIsNoError(runRestore(ctx, args[1:], stdin, stdout, stderr))
		case "migrate":
			return helpIsNoError(runMigrate(ctx, args[1:], os.Getenv, stdout, stderr))
		}
	}
	return serve(ctx, args, stdout, stderr)
}

// serve parses flags, starts the server and blocks until ctx ends.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, subcommandsHelp+migrateHelp)
			return nil
		}
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	// The collection policy is the process's, not the Main's (tests run
	// several Mains in one process), so serve owns it.
	gcDone := make(chan struct{})
	var gc *idleGC
	if m.Config.IdleGC {
		gc = newIdleGC(m.log, m.Getenv)
	}
	go func() {
		defer close(gcDone)
		if gc != nil {
			_ = gc.Run(ctx)
		}
	}()
	<-ctx.Done()
	<-gcDone
	return m.Close()
}

// helpIsNoError turns -h, which the flag package reports as an error after
// printing the usage, into success.
func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
