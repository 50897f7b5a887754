package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
	"github.com/tinkops/tinkops/state/postgres"
)

// migrateHelp documents `tink-server migrate` in the server's --help.
const migrateHelp = `  tink-server migrate --from badger:DIR --to postgres
  tink-server migrate --from postgres --to badger:DIR
        copy every object, run, event (with its sequence number) and the sync status
        between stores; the servers must be stopped and the target empty
`

// runMigrate is `tink-server migrate`: it copies a whole store to another
// backend, keeping resource versions and event sequence numbers (clients
// resuming a watch or an update keep working), then reads both back and
// compares them record by record.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tink-server migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the store to copy: badger:DIR or postgres")
	to := fs.String("to", "", "the store to fill, which must be empty: postgres or badger:DIR")
	dsnFile := fs.String("postgres-dsn-file", "", "file holding the PostgreSQL connection string (else "+envPostgresDSN+")")
	schema := fs.String("postgres-schema", "", "PostgreSQL schema of tinkops' tables (default tinkops)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))
	}
	src, err := parseEndpoint("--from", *from)
	if err != nil {
		return err
	}
	dst, err := parseEndpoint("--to", *to)
	if err != nil {
		return err
	}
	if src.kind == dst.kind {
		return fmt.Errorf("migrate: --from and --to are both %s; migrate moves between badger and postgres", src.kind)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var dsn string
	if src.kind == storePostgres || dst.kind == storePostgres {
		if dsn, err = postgresDSN(*dsnFile, getenv); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	pgOpts := postgres.Options{Schema: *schema, Logger: log, CompactInterval: -1}
	badgerOpts := badger.Options{Logger: log, CompactInterval: -1, GCInterval: -1}

	var source interface {
		state.Store
		state.Dumper
	}
	if src.kind == storeBadger {
		source, err = badger.Open(ctx, src.dir, badgerOpts)
	} else {
		source, err = postgres.Open(ctx, dsn, pgOpts)
	}
	if err != nil {
		return fmt.Errorf("migrate: open %s: %w", src, err)
	}
	defer source.Close()

	var target state.Dumper
	if dst.kind == storeBadger {
		if err := badger.LoadDir(ctx, dst.dir, badgerOpts, source.Dump); err != nil {
			return fmt.Errorf("migrate: into %s: %w", dst, err)
		}
		b, err := badger.Open(ctx, dst.dir, badgerOpts)
		if err != nil {
			return fmt.Errorf("migrate: reopen %s: %w", dst, err)
		}
		defer b.Close()
		target = b
	} else {
		p, err := postgres.Open(ctx, dsn, pgOpts)
		if err != nil {
			return fmt.Errorf("migrate: open %s: %w", dst, err)
		}
		defer p.Close()
		if err := p.Load(ctx, source.Dump); err != nil {
			return fmt.Errorf("migrate: into %s: %w", dst, err)
		}
		target = p
		dst.where = p.Where()
	}
	if p, ok := source.(*postgres.Store); ok {
		src.where = p.Where()
	}

	want, err := digestDump(ctx, source.Dump)
	if err != nil {
		return fmt.Errorf("migrate: read %s back: %w", src, err)
	}
	got, err := digestDump(ctx, target.Dump)
	if err != nil {
		return fmt.Errorf("migrate: read %s back: %w", dst, err)
	}
	if err := want.compare(got); err != nil {
		return fmt.Errorf("migrate: %s differs from %s after the copy: %w", dst, src, err)
	}
	fmt.Fprintf(stdout, "migrated %s from %s to %s; read back and compared record by record\n", want.summary(), src, dst)
	return nil
}

// endpoint is one side of a migration.
type endpoint struct {
	kind  string
	dir   string // badger
	where string // postgres, once open
}

func (e endpoint) String() string {
	if e.kind == storeBadger {
		return "badger:" + e.dir
	}
	if e.where != "" {
		return "postgres " + e.where
	}
	return "postgres"
}

func parseEndpoint(flagName, v string) (endpoint, error) {
	switch {
	case v == storePostgres:
		return endpoint{kind: storePostgres}, nil
	case strings.HasPrefix(v, storeBadger+":") && len(v) > len(storeBadger)+1:
		return endpoint{kind: storeBadger, dir: v[len(storeBadger)+1:]}, nil
	case v == "":
		return endpoint{}, fmt.Errorf("migrate: %s is required (badger:DIR or postgres)", flagName)
	}
	return endpoint{}, fmt.Errorf("migrate: invalid value %q for %s: want badger:DIR or postgres", v, flagName)
}

// dumpDigest is a store's content reduced to one hash per record, enough to
// compare two stores without holding either in memory.
type dumpDigest struct {
	header  state.DumpHeader
	records [][sha256.Size]byte
	kinds   []string
	objects int
	runs    int
	events  int
	first   uint64
	last    uint64
}

func digestDump(ctx context.Context, dump state.DumpFunc) (*dumpDigest, error) {
	d := &dumpDigest{}
	err := dump(ctx, func(item state.DumpItem) error {
		var v any
		var what string
		switch {
		case item.Header != nil:
			d.header = *item.Header
			return nil
		case item.Object != nil:
			v, what = item.Object, item.Object.Key().String()
			d.objects++
		case item.Run != nil:
			v, what = item.Run, item.Run.Key().String()
			d.runs++
		case item.Event != nil:
			v, what = item.Event, fmt.Sprintf("event %d", item.Event.Seq)
			if d.events == 0 {
				d.first = item.Event.Seq
			}
			d.last = item.Event.Seq
			d.events++
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		d.records = append(d.records, sha256.Sum256(b))
		d.kinds = append(d.kinds, what)
		return nil
	})
	return d, err
}

func (d *dumpDigest) compare(o *dumpDigest) error {
	h1, _ := json.Marshal(d.header)
	h2, _ := json.Marshal(o.header)
	if string(h1) != string(h2) {
		return fmt.Errorf("counters or sync status: %s, want %s", h2, h1)
	}
	for i := range min(len(d.records), len(o.records)) {
		if d.records[i] != o.records[i] {
			return fmt.Errorf("%s differs", d.kinds[i])
		}
	}
	if len(d.records) != len(o.records) {
		return fmt.Errorf("%d records, want %d", len(o.records), len(d.records))
	}
	return nil
}

func (d *dumpDigest) summary() string {
	s := fmt.Sprintf("%d objects, %d runs, %d events", d.objects, d.runs, d.events)
	if d.events > 0 {
		s += fmt.Sprintf(" (sequence %d..%d)", d.first, d.last)
	}
	if d.header.Sync != nil && d.header.Sync.LastAppliedRevision != "" {
		s += ", sync status at " + d.header.Sync.LastAppliedRevision
	}
	return s
}
