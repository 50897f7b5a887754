package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// subcommandsHelp is appended to the server's --help: the flag package
// prints only the server's flags.
const subcommandsHelp = `
Subcommands:
  tink-server backup --data-dir DIR --out FILE
        write a backup of the state directory DIR (the server must be stopped)
  tink-server backup --server URL --out FILE
        write a backup of a running server's store (admin token in TINK_TOKEN)
  tink-server restore --data-dir DIR --in FILE
        restore a backup into DIR, which must be empty or absent
Use - as FILE for standard output or input. Run "tink-server backup -h" for details.
`

// defaultDataDir is the server's --data-dir default, so that the
// subcommands find the directory the server uses without being told.
const defaultDataDir = "./tink-data"

// runBackup is `tink-server backup`: it writes a backup of a state directory
// that no server holds (a running server holds the directory's lock), or,
// with --server, of a running server's store through GET /v1/backup,
// checked frame by frame and against its end digest as it arrives.
//
// The file is written next to its final name and renamed into place once it
// is complete and synced, so that FILE is always either the previous backup
// or a complete new one.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tink-server backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "state directory to back up (the server using it must be stopped)")
	out := fs.String("out", "", "file to write the backup to (replaced atomically); - for standard output")
	server := fs.String("server", "", "back up this running tink-server (its URL) instead of a state directory")
	token := fs.String("token", os.Getenv("TINK_TOKEN"), "admin API token for --server (env TINK_TOKEN; prefer it: arguments show in ps)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tink-server backup --data-dir DIR --out FILE\n"+
			"       tink-server backup --server URL --out FILE\n\n"+
			"Writes a consistent backup of a server's state: objects, runs, events and sync status,\n"+
			"from a stopped server's state directory or, with --server, from a running server.\n"+
			"Restore it with tink-server restore.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backup: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("backup: --out is required (a file, or - for standard output)")
	}
	opts := badger.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	backup := func(w io.Writer) (badger.BackupInfo, error) {
		info, err := badger.BackupDir(ctx, *dataDir, w, opts)
		if state.ErrorCode(err) == state.ECONFLICT {
			return info, fmt.Errorf("%w\nA backup reads the state directory directly and needs it to itself: stop tink-server, run the backup, and start it again (or back up a filesystem snapshot of the directory), or back up the running server with --server URL", err)
		}
		return info, err
	}
	if *server != "" {
		*dataDir = *server
		backup = func(w io.Writer) (badger.BackupInfo, error) { return backupFromServer(ctx, *server, *token, w) }
	}

	var info badger.BackupInfo
	summary := stdout
	if *out == "-" {
		// The backup is on standard output; the summary goes elsewhere.
		summary = stderr
		var err error
		if info, err = backup(stdout); err != nil {
			return fmt.Errorf("backup of %s: %w", *dataDir, err)
		}
	} else {
		err := writeFileAtomic(ctx, *out, func(w io.Writer) error {
			var err error
			info, err = backup(w)
			return err
		})
		if err != nil {
			return fmt.Errorf("backup of %s to %s: %w", *dataDir, *out, err)
		}
	}
	fmt.Fprintf(summary, "backed up %s: %s, %d bytes -> %s\n", *dataDir, counts(info), info.Bytes, *out)
	return nil
}

// runRestore is `tink-server restore`: it writes a backup into a new state
// directory. It never writes into a directory that holds anything, so the
// operator moves a damaged directory aside first (and keeps it until the
// restored server runs).
func runRestore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tink-server restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "state directory to create; it must be empty or absent")
	in := fs.String("in", "", "backup file to read (written by tink-server backup); - for standard input")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tink-server restore --data-dir DIR --in FILE\n\n"+
			"Restores a backup into DIR, which must be empty or absent: move the old state directory aside first.\n"+
			"Start tink-server on DIR afterwards; Git-managed objects catch up with the repository at the first sync.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("restore: unexpected argument %q", fs.Arg(0))
	}
	if *in == "" {
		return errors.New("restore: --in is required (a file, or - for standard input)")
	}
	r, name := stdin, "standard input"
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		r, name = f, *in
	}
	opts := badger.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	info, err := badger.Restore(ctx, *dataDir, r, opts)
	if err != nil {
		return fmt.Errorf("restore %s into %s: %w", name, *dataDir, err)
	}
	fmt.Fprintf(stdout, "restored %s into %s: %s, %d bytes (backup taken %s)\n",
		name, *dataDir, counts(info), info.Bytes, info.Created.Format("2006-01-02 15:04:05 MST"))
	return nil
}

// counts renders what a backup holds for the summary line.
func counts(info badger.BackupInfo) string {
	s := fmt.Sprintf("%d objects, %d runs, %d events", info.Objects, info.Runs, info.Events)
	if info.Events > 0 {
		s += fmt.Sprintf(" (seq %d-%d)", info.FirstEventSeq, info.LastEventSeq)
	}
	return s
}

// writeFileAtomic writes path through write: into a temporary file in the
// same directory, synced, then renamed over path, and the directory synced,
// so that a crash or an error leaves either the old file or the new one,
// never part of one. The temporary file is removed on failure.
func writeFileAtomic(ctx context.Context, path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		// The rename is durable once the directory is; some systems
		// cannot sync a directory, and the file is complete either way.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// backupFromServer streams a running server's backup into w and checks it
// as it arrives (every frame, the end digest): a stream cut short fails
// here, so the previous backup file is not replaced by a partial one.
func backupFromServer(ctx context.Context, server, token string, w io.Writer) (badger.BackupInfo, error) {
	c, err := client.New(server, token, nil)
	if err != nil {
		return badger.BackupInfo{}, err
	}
	pr, pw := io.Pipe()
	verified := make(chan error, 1)
	var info badger.BackupInfo
	go func() {
		var err error
		info, err = badger.VerifyBackup(ctx, pr)
		// Drain what the server still sends, so that the copy below never
		// blocks on a verifier that stopped early.
		_, _ = io.Copy(io.Discard, pr)
		verified <- err
	}()
	_, err = c.Backup(ctx, io.MultiWriter(w, pw))
	pw.CloseWithError(err)
	verr := <-verified
	if err != nil {
		return badger.BackupInfo{}, err
	}
	if verr != nil {
		return badger.BackupInfo{}, fmt.Errorf("the backup received is not complete: %w", verr)
	}
	return info, nil
}
