package badger

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/proto"

	"github.com/tinkops/tinkops/state"
)

// checkDir inspects and prepares a state directory before Badger opens it,
// working around three ways Badger handles its files unsafely:
//
//   - Badger deletes table files its MANIFEST does not list. That is right
//     after a crash during a flush or compaction (the table was written but
//     not yet recorded, and its data is still in the log or in other
//     tables), but after a MANIFEST lost records it silently deletes data.
//     So unlisted tables are moved to orphaned/ instead, where Badger does
//     not look; if the database then turns out to have lost its data, the
//     tables are still there (see the README).
//   - A damaged table makes Badger panic or exit in one of its own
//     goroutines, where no recover reaches. So every listed table's
//     checksums are verified here first, and damage is reported as an error.
//     This reads every table file once per open.
//   - Badger creates its log files (.vlog on every open, .mem on every open
//     and memtable switch) empty and then sizes them, and deletes them by
//     truncating them to zero and then unlinking them. A crash in between
//     leaves an empty file that makes every later open fail ("Create a new
//     file"). An empty log holds nothing, so it is removed.
func checkDir(dir string, opts Options) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return state.Errorf(state.EINTERNAL, "read state directory %s: %v", dir, err)
	}
	var hasManifest bool
	var tables []uint64
	var logs []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "MANIFEST":
			hasManifest = true
		case strings.HasSuffix(name, ".sst"):
			if id, ok := table.ParseFileID(name); ok {
				tables = append(tables, id)
			}
		case strings.HasSuffix(name, ".vlog"), strings.HasSuffix(name, ".mem"):
			if fi, err := e.Info(); err == nil && fi.Size() == 0 {
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					return state.Errorf(state.EINTERNAL, "remove empty %s in %s: %v", name, dir, err)
				}
				opts.Logger.Info("removed an empty log file left by an interrupted create or delete", "dir", dir, "file", name)
				continue
			}
			logs = append(logs, name)
		}
	}
	if !hasManifest {
		if len(tables) > 0 || len(logs) > 0 {
			return damaged(dir, "MANIFEST is missing but data files are present")
		}
		return nil // a new directory
	}

	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return damaged(dir, "open MANIFEST: %v", err)
	}
	defer f.Close()
	bo := opts.badgerOptions(dir)
	mf, _, err := badgerdb.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	if err != nil {
		return damaged(dir, "MANIFEST: %s", firstLine(err.Error()))
	}

	ids := make([]uint64, 0, len(mf.Tables))
	for id := range mf.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tm := mf.Tables[id]
		if tm.KeyID != 0 {
			continue // encrypted; this package never encrypts, Badger checks it
		}
		if err := verifyTable(table.NewFilename(id, dir), tm.Compression, bo.BlockSize); err != nil {
			return damaged(dir, "%v", err)
		}
	}

	var orphaned []string
	for _, id := range tables {
		if _, ok := mf.Tables[id]; ok {
			continue
		}
		name := table.IDToFilename(id)
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Size() == 0 {
			// A table whose deletion was interrupted (Badger truncates
			// before it unlinks): nothing to keep.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return state.Errorf(state.EINTERNAL, "remove empty %s in %s: %v", name, dir, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, orphanDir), 0o700); err != nil {
			return state.Errorf(state.EINTERNAL, "keep unlisted table %s in %s: %v", name, dir, err)
		}
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, orphanDir, name)); err != nil {
			return state.Errorf(state.EINTERNAL, "keep unlisted table %s in %s: %v", name, dir, err)
		}
		orphaned = append(orphaned, name)
	}
	if len(orphaned) > 0 {
		opts.Logger.Warn("moved table files the MANIFEST does not list to "+orphanDir+"/ (normal after a crash during a flush or compaction)",
			"dir", dir, "files", orphaned)
	}
	return nil
}

// orphanDir is where checkDir keeps table files the MANIFEST does not list.
const orphanDir = "orphaned"

// verifyTable checks one table file: first its footer and index by hand
// (Badger's own reader exits the process on a bad footer), then every block
// checksum through Badger's table reader, with panics recovered.
func verifyTable(path string, compression options.CompressionType, blockSize int) (err error) {
	name := filepath.Base(path)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return fmt.Errorf("table %s listed in the MANIFEST is missing", name)
	}
	if err := verifyFooter(path); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("table %s: %v", name, firstLine(err.Error()))
	}
	closed := false
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("table %s is corrupt: a block does not decode (%s)", name, firstLine(fmt.Sprint(r)))
		}
		if !closed {
			_ = mf.Close(-1)
		}
	}()
	t, err := table.OpenTable(mf, table.Options{
		Compression: compression,
		BlockSize:   blockSize,
		ChkMode:     options.NoVerification,
	})
	if err != nil {
		return fmt.Errorf("table %s: %s", name, firstLine(err.Error()))
	}
	if err := t.VerifyChecksum(); err != nil {
		return fmt.Errorf("table %s: %s", name, firstLine(err.Error()))
	}
	closed = true
	// Close unmaps without deleting; DecrRef would delete the file.
	return t.Close(-1)
}

// verifyFooter checks the layout at the end of a table file:
//
//	... index | index length (4) | checksum (n) | checksum length n (4)
//
// and the index checksum, so that Badger's reader only ever sees sane
// offsets.
func verifyFooter(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	u32 := func(off int64) (int64, error) {
		var b [4]byte
		if off < 0 || off+4 > size {
			return 0, io.ErrUnexpectedEOF
		}
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(b[:])), nil
	}
	bad := func(what string) error { return fmt.Errorf("is truncated or corrupt (%s)", what) }

	pos := size - 4
	chkLen, err := u32(pos)
	if err != nil {
		return bad("no footer")
	}
	pos -= chkLen
	if chkLen == 0 || pos < 4 {
		return bad("checksum length")
	}
	chkBuf := make([]byte, chkLen)
	if _, err := f.ReadAt(chkBuf, pos); err != nil {
		return bad("checksum")
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(chkBuf, &chk); err != nil {
		return bad("checksum")
	}
	pos -= 4
	idxLen, err := u32(pos)
	if err != nil || idxLen == 0 || idxLen > pos {
		return bad("index length")
	}
	idx := make([]byte, idxLen)
	if _, err := f.ReadAt(idx, pos-idxLen); err != nil {
		return bad("index")
	}
	if err := y.VerifyChecksum(idx, &chk); err != nil {
		return bad("index checksum mismatch")
	}
	return nil
}
