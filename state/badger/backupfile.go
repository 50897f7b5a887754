package badger

// The backup file's layout (see backup.go for what it holds and why): the
// magic, the header line, checksummed frames carrying Badger's stream, and
// the end marker with the digest of everything before it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/tinkops/tinkops/state"
)

const (
	backupMagic = "tinkops-backup\n"
	// backupVersion is the file layout above; Restore refuses newer ones.
	backupVersion = 1
	// maxFrame bounds a frame, so that a corrupt length cannot make
	// Restore allocate more than this.
	maxFrame = 1 << 20
	// maxHeader bounds the header line.
	maxHeader = 64 << 10
	// listBytes is roughly how much one KVList of the stream holds.
	listBytes = 1 << 20
	// loadPending is how many batches Badger's loader keeps in flight.
	loadPending = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameWriter cuts what is written to it into checksummed frames.
type frameWriter struct {
	w    *bufio.Writer
	sum  hash.Hash // of every byte written before the end marker
	buf  []byte
	n    int64 // bytes written to w
	werr error
}

// startBackup writes the magic and the header and returns the writer for the
// stream.
func startBackup(w io.Writer, info BackupInfo) (*frameWriter, error) {
	fw := &frameWriter{w: bufio.NewWriterSize(w, 64<<10), sum: sha256.New(), buf: make([]byte, 0, maxFrame)}
	hdr, err := json.Marshal(info)
	if err != nil {
		return nil, state.Errorf(state.EINTERNAL, "encode backup header: %v", err)
	}
	fw.raw([]byte(backupMagic))
	fw.raw(append(hdr, '\n'))
	return fw, fw.werr
}

// raw writes p to the file, hashing it.
func (f *frameWriter) raw(p []byte) {
	if f.werr != nil {
		return
	}
	f.sum.Write(p)
	n, err := f.w.Write(p)
	f.n += int64(n)
	f.werr = err
}

// Write buffers p, writing each full frame.
func (f *frameWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := min(len(p), maxFrame-len(f.buf))
		f.buf = append(f.buf, p[:k]...)
		p = p[k:]
		if len(f.buf) == maxFrame {
			f.frame()
		}
	}
	if f.werr != nil {
		return 0, f.werr
	}
	return total, nil
}

// frame writes the buffered bytes as one frame.
func (f *frameWriter) frame() {
	if len(f.buf) == 0 {
		return
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(f.buf)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(f.buf, castagnoli))
	f.raw(hdr[:])
	f.raw(f.buf)
	f.buf = f.buf[:0]
}

// finish writes the last frame and the end marker and flushes.
func (f *frameWriter) finish() error {
	f.frame()
	digest := f.sum.Sum(nil)
	if f.werr == nil {
		var end [4]byte
		n, err := f.w.Write(append(end[:], digest...))
		f.n += int64(n)
		f.werr = err
	}
	if f.werr == nil {
		f.werr = f.w.Flush()
	}
	return f.werr
}

// frameReader reads a backup: the header, then the frames' payloads as one
// stream for Badger's loader, checking every frame and the end marker. Its
// error is sticky; done is set once the end marker matched.
type frameReader struct {
	ctx  context.Context
	r    *bufio.Reader
	sum  hash.Hash
	n    int64 // bytes consumed
	buf  []byte
	rest []byte // payload of the current frame not yet read
	done bool
	err  error
}

// read reads exactly len(p) bytes, hashing them if hash is set.
func (f *frameReader) read(p []byte, hash bool) error {
	n, err := io.ReadFull(f.r, p)
	f.n += int64(n)
	if hash {
		f.sum.Write(p[:n])
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return f.truncated()
	case err != nil:
		return state.Errorf(state.EINTERNAL, "read the backup at byte %d: %v", f.n, err)
	}
	return nil
}

func (f *frameReader) truncated() error {
	return state.Errorf(state.EINVALID, "the backup is truncated: it ends after %d bytes without its end marker (an incomplete copy?)", f.n)
}

func (f *frameReader) corrupt(format string, args ...any) error {
	return state.Errorf(state.EINVALID, "the backup is corrupt: %s", fmt.Sprintf(format, args...))
}

// header reads and checks the magic and the header.
func (f *frameReader) header() (BackupInfo, error) {
	magic := make([]byte, len(backupMagic))
	n, err := io.ReadFull(f.r, magic)
	f.n += int64(n)
	f.sum.Write(magic[:n])
	if err != nil || string(magic) != backupMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return BackupInfo{}, state.Errorf(state.EINTERNAL, "read the backup: %v", err)
		}
		return BackupInfo{}, state.Errorf(state.EINVALID, "not a tinkops backup: it does not begin with %q", backupMagic[:len(backupMagic)-1])
	}
	line, err := f.r.ReadSlice('\n')
	f.n += int64(len(line))
	f.sum.Write(line)
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return BackupInfo{}, f.corrupt("the header is longer than %d bytes", maxHeader)
	case errors.Is(err, io.EOF):
		return BackupInfo{}, f.truncated()
	case err != nil:
		return BackupInfo{}, state.Errorf(state.EINTERNAL, "read the backup header: %v", err)
	}
	var info BackupInfo
	if err := json.Unmarshal(line, &info); err != nil || info.Version <= 0 {
		return BackupInfo{}, f.corrupt("the header does not decode")
	}
	if info.Version > backupVersion {
		return BackupInfo{}, state.Errorf(state.EINVALID, "the backup has format %d, written by a newer tinkops; this one reads format %d", info.Version, backupVersion)
	}
	if info.StoreFormat != formatVersion && !upgradable(info.StoreFormat) {
		return BackupInfo{}, state.Errorf(state.EINVALID, "the backup holds state format %q; this version of tinkops reads %q", info.StoreFormat, formatVersion)
	}
	return info, nil
}

// Read implements io.Reader for Badger's loader: the payloads of the
// frames, then io.EOF after a valid end marker.
func (f *frameReader) Read(p []byte) (int, error) {
	for len(f.rest) == 0 {
		switch {
		case f.err != nil:
			return 0, f.err
		case f.done:
			return 0, io.EOF
		}
		f.err = f.next()
	}
	n := copy(p, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// next reads the next frame, or the end marker.
func (f *frameReader) next() error {
	if err := f.ctx.Err(); err != nil {
		return err
	}
	at := f.n
	var hdr [8]byte
	if err := f.read(hdr[:4], false); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size == 0 {
		want := f.sum.Sum(nil)
		got := make([]byte, len(want))
		if err := f.read(got, false); err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return f.corrupt("the digest at its end does not match its content")
		}
		f.done = true
		return nil
	}
	f.sum.Write(hdr[:4])
	if size > maxFrame {
		return f.corrupt("the frame at byte %d claims %d bytes, more than the maximum of %d", at, size, maxFrame)
	}
	if err := f.read(hdr[4:], true); err != nil {
		return err
	}
	if cap(f.buf) < int(size) {
		f.buf = make([]byte, maxFrame)
	}
	f.buf = f.buf[:size]
	if err := f.read(f.buf, true); err != nil {
		return err
	}
	if crc32.Checksum(f.buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		return f.corrupt("the frame at byte %d fails its checksum", at)
	}
	f.rest = f.buf
	return nil
}

// trailing refuses bytes after the end marker: a file with more in it is not
// the file Backup wrote.
func (f *frameReader) trailing() error {
	if _, err := f.r.ReadByte(); err == nil {
		return f.corrupt("it has data after its end marker at byte %d", f.n)
	} else if !errors.Is(err, io.EOF) {
		return state.Errorf(state.EINTERNAL, "read the backup: %v", err)
	}
	return nil
}

// VerifyBackup reads a whole backup and checks its header, every frame and
// the end marker's digest, without restoring it: how a backup received
// over the network (tink-server backup --server) is known to be complete
// before it replaces the previous one.
func VerifyBackup(ctx context.Context, r io.Reader) (BackupInfo, error) {
	fr := &frameReader{ctx: ctx, r: bufio.NewReaderSize(r, maxHeader), sum: sha256.New()}
	info, err := fr.header()
	if err != nil {
		return BackupInfo{}, err
	}
	if _, err := io.Copy(io.Discard, fr); err != nil {
		return BackupInfo{}, err
	}
	if !fr.done {
		return BackupInfo{}, fr.truncated()
	}
	if err := fr.trailing(); err != nil {
		return BackupInfo{}, err
	}
	info.Bytes = fr.n
	return info, nil
}
