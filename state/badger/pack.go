package badger

import (
	"fmt"

	"github.com/klauspost/compress/s2"
)

// Records of objects, runs and events are stored compressed (format
// tinkops-state/3; format 2 left events plain). A run's record holds every
// action of the run and is written again at each transition of one of
// them: about 7 KB of JSON for a 20-action run, rewritten thousands of
// times a second under a fleet's workers. Compressed it is about 650 bytes (S2, 1.2 µs to encode, 0.7 µs
// to decode). Badger's WAL, memtables, flushes and compactions then move a
// tenth of the bytes, and the commits that stalled behind them (p99 report
// latency at 2,000 reports/s) stall far less: see BENCHMARKS.md. Objects
// and events are compressed the same way: a fleet's first sync of 20,100
// objects wrote 14 MB of events and 10 MB of objects (packed) before its
// events were packed too.
//
// A packed record is packedRecord followed by an S2 block of the JSON; a
// record whose first byte is '{' is plain JSON (every record of format
// tinkops-state/1, events of format 2, and records too small to gain).
// Every read path (reads, lists, the writer's own, state.Dumper for
// `tink-server migrate`) decodes either form.

// packedRecord marks a compressed record. JSON records begin with '{'.
const packedRecord = 0x01

// packMin is the smallest record worth compressing: below it the S2
// block's header and the CPU cost outweigh what is saved.
const packMin = 256

// maxUnpacked bounds the length a damaged packed record may claim, so that
// reading it fails instead of allocating that much. Records are at most
// Store.maxValue (a few MB).
const maxUnpacked = 64 << 20

// pack returns the stored form of a record's JSON. scratch is reused
// between calls for the encoder's worst case; the result is a new slice of
// exactly the packed size, since a batch holds every value until it
// commits (20,100 of them in a fleet's first sync).
func pack(scratch *[]byte, record []byte) []byte {
	if len(record) < packMin {
		return record
	}
	if need := s2.MaxEncodedLen(len(record)); cap(*scratch) < need {
		*scratch = make([]byte, need)
	}
	enc := s2.Encode((*scratch)[:cap(*scratch)], record)
	if len(enc)+1 >= len(record) {
		return record // incompressible: plain JSON costs nothing to read
	}
	out := make([]byte, 1+len(enc))
	out[0] = packedRecord
	copy(out[1:], enc)
	return out
}

// unpack returns the JSON of a stored record, which may be plain JSON or
// packed.
func unpack(v []byte) ([]byte, error) { return unpackTo(nil, v) }

// packed reports whether a stored record is packed.
func packed(v []byte) bool { return len(v) > 0 && v[0] == packedRecord }

// unpackTo is unpack, decoding a packed record into buf when buf's
// capacity holds it: a scan that only peeks at each record reuses one
// buffer instead of allocating one per record. A plain record is returned
// as it is (v itself, not buf).
func unpackTo(buf, v []byte) ([]byte, error) {
	if !packed(v) {
		return v, nil
	}
	n, err := s2.DecodedLen(v[1:])
	if err != nil {
		return nil, fmt.Errorf("compressed record: %v", err)
	}
	if n > maxUnpacked {
		return nil, fmt.Errorf("compressed record claims %d bytes, more than any record", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := s2.Decode(buf[:n], v[1:])
	if err != nil {
		return nil, fmt.Errorf("compressed record: %v", err)
	}
	return out, nil
}
