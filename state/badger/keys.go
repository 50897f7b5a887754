package badger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"

	"github.com/tinkops/tinkops/state"
)

// Key layout; see the package documentation for why it looks like this.
const (
	prefixObject = "o/"
	prefixRun    = "r/"
	prefixEvent  = "e/"
	prefixStage  = "x/"

	keyFormat   = "m/format"
	keyCounters = "m/counters"
	keyOldest   = "m/oldest"
	keySync     = "m/sync"
	keyRedo     = "m/redo"

	// formatVersion is stored under keyFormat. Bump it when the layout
	// changes incompatibly; Open refuses directories it does not know.
	// Format 3 stores every record of objects, runs and events compressed
	// (pack.go).
	formatVersion = "tinkops-state/3"
	// formatV1 (every record plain JSON) and formatV2 (events plain JSON)
	// are the formats before it. Format 3 reads their records as they
	// are: Open upgrades such a directory's marker (so that an older
	// server, which could not read the records written from then on,
	// refuses the directory instead), and Restore accepts their backups.
	formatV1 = "tinkops-state/1"
	formatV2 = "tinkops-state/2"
)

// upgradable reports whether a directory or backup of format f is read
// as it is and upgraded by setting its marker.
func upgradable(f string) bool { return f == formatV1 || f == formatV2 }

// sep separates the parts of a key. Names cannot contain control characters
// (state.ObjectKey.Validate), so it cannot occur inside a part, and since it
// sorts before every printable byte, "Hardware" keys sort before
// "HardwareProfile" keys and a kind's prefix never matches another kind.
const sep = 0

func objectKey(k state.ObjectKey) []byte {
	b := make([]byte, 0, len(prefixObject)+len(k.Kind)+len(k.Namespace)+len(k.Name)+2)
	b = append(b, prefixObject...)
	b = append(b, k.Kind...)
	b = append(b, sep)
	b = append(b, k.Namespace...)
	b = append(b, sep)
	return append(b, k.Name...)
}

// objectPrefix returns the prefix of all objects of kind (all kinds if
// empty), in namespace if ns is not empty.
func objectPrefix(kind, ns string) []byte {
	b := []byte(prefixObject)
	if kind == "" {
		return b
	}
	b = append(b, kind...)
	b = append(b, sep)
	if ns != "" {
		b = append(b, ns...)
		b = append(b, sep)
	}
	return b
}

func runKey(k state.RunKey) []byte {
	b := runPrefix(k.Namespace, k.Workflow, true)
	return binary.BigEndian.AppendUint64(b, uint64(k.Number))
}

// runPrefix returns the prefix of the runs of one workflow (exact) or of a
// namespace (all namespaces if ns is empty).
func runPrefix(ns, workflow string, exact bool) []byte {
	b := []byte(prefixRun)
	if !exact && ns == "" {
		return b
	}
	b = append(b, ns...)
	b = append(b, sep)
	if !exact {
		return b
	}
	b = append(b, workflow...)
	return append(b, sep)
}

// eventKey encodes seq big-endian so that key order is sequence order.
func eventKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixEvent), seq)
}

func eventSeq(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(prefixEvent):])
}

func stageKey(chunk int) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixStage), uint64(chunk))
}

// encodeToken makes a continue token from the last key of a page. It is
// opaque to clients but not secret: it only lets a client resume a scan.
func encodeToken(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(key)
}

// decodeToken returns the key to resume after, checking that the token
// belongs to a scan of prefix.
func decodeToken(token string, prefix []byte) ([]byte, error) {
	key, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !bytes.HasPrefix(key, prefix) || len(key) == len(prefix) {
		return nil, state.Errorf(state.EINVALID, "continue token %q does not belong to this query", token)
	}
	return key, nil
}

// counters are the store-wide sequence and resource-version counters, saved
// in the same transaction as every change that advances them.
type counters struct {
	NextSeq uint64 `json:"nextSeq"`
	NextRV  uint64 `json:"nextRV"`
}

func (c counters) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.NextSeq)
	return binary.BigEndian.AppendUint64(b, c.NextRV)
}

func decodeCounters(b []byte) (counters, bool) {
	if len(b) != 16 {
		return counters{}, false
	}
	return counters{NextSeq: binary.BigEndian.Uint64(b), NextRV: binary.BigEndian.Uint64(b[8:])}, true
}
