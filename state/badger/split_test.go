package badger_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// bigBatch returns a batch of n objects labelled with id, each with about pad
// bytes of annotation, and one sync event.
func bigBatch(id, n, pad int) *state.Batch {
	b := &state.Batch{Actor: state.ActorGit, Revision: "main@sha1:" + strconv.Itoa(id)}
	for j := range n {
		o := hw(fmt.Sprintf("b%06d-%03d", id, j), map[string]string{"batch": strconv.Itoa(id), "size": strconv.Itoa(n)})
		if pad > 0 {
			o.Annotations = map[string]string{"padding": strings.Repeat("p", pad)}
		}
		b.Put(o, "")
	}
	b.Events = append(b.Events, state.Event{Type: state.EventSync, Message: "batch " + strconv.Itoa(id)})
	return b
}

// paddedBatch returns a batch of n hardware named by format, each with an
// annotation of pad incompressible bytes (stored as large as written).
func paddedBatch(format string, n, pad int) *state.Batch {
	b := &state.Batch{Actor: state.ActorGit}
	for i := range n {
		o := hw(fmt.Sprintf(format, i), nil)
		o.Annotations = map[string]string{"padding": incompressible(pad)}
		b.Put(o, "")
	}
	return b
}

// TestLargeBatch forces batches over the transaction limit and checks that
// readers never see part of one, and that they are written in full.
func TestLargeBatch(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})

	const batches, size = 8, 60
	done := make(chan struct{})
	readErr := make(chan error, 1)
	reads := 0
	go func() {
		defer close(readErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
			if err != nil {
				readErr <- err
				return
			}
			reads++
			per := map[string]int{}
			for _, o := range page.Objects {
				per[o.Labels["batch"]]++
			}
			for b, n := range per {
				if n != size {
					readErr <- fmt.Errorf("reader saw %d of the %d objects of batch %s", n, size, b)
					return
				}
			}
		}
	}()
	for i := range batches {
		_, err := s.Apply(ctx, bigBatch(i, size, 500))
		require.NoError(t, err)
	}
	close(done)
	for err := range readErr {
		require.NoError(t, err)
	}
	require.Equal(t, uint64(batches), s.Stats().Splits.Load(), "every batch needed several transactions")
	t.Logf("%d reads during %d split batches", reads, batches)

	page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	require.Len(t, page.Objects, batches*size)
	evs, err := s.Events(ctx, state.EventQuery{Limit: 10000})
	require.NoError(t, err)
	require.Len(t, evs, batches*(size+1))
	for i, ev := range evs {
		require.Equal(t, uint64(i+1), ev.Seq)
	}

	// Small batches around large ones still work, and the counters moved on.
	o, err := s.PutObject(ctx, state.ActorGit, hw("after", nil))
	require.NoError(t, err)
	require.Equal(t, uint64(batches*size+1), o.ResourceVersion)
}

func TestErrObjectTooLarge(t *testing.T) {
	s := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})
	o := hw("huge", nil)
	o.Annotations = map[string]string{"padding": strings.Repeat("p", 20<<10)}
	_, err := s.PutObject(context.Background(), state.ActorGit, o)
	require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
	require.Contains(t, state.ErrorMessage(err), "Hardware/huge")
}

// TestLargeBatchNamesFirstTooLarge: a batch large enough to be encoded
// on several cores, with two objects past the value limit far apart,
// fails naming the first of them, as one encoded in order would, and
// writes nothing.
func TestLargeBatchNamesFirstTooLarge(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), badger.Options{MaxTxnBytes: 16 << 10})
	b := bigBatch(1, 4000, 0)
	for _, at := range []int{1500, 3900} {
		b.Objects[at].Object.Annotations = map[string]string{"padding": strings.Repeat("p", 20<<10)}
	}
	_, err := s.Apply(ctx, b)
	require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
	require.Contains(t, state.ErrorMessage(err), b.Objects[1500].Object.Name)
	require.NotContains(t, state.ErrorMessage(err), b.Objects[3900].Object.Name)
	page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
	require.NoError(t, err)
	require.Empty(t, page.Objects)
	b.Objects[1500].Object.Annotations, b.Objects[3900].Object.Annotations = nil, nil
	_, err = s.Apply(ctx, b)
	require.NoError(t, err, "the same batch within the limit")
	page, err = s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Limit: 5000})
	require.NoError(t, err)
	require.Len(t, page.Objects, 4000)
}

// TestLargeRecords: records of 1 MB and more go to Badger's value log and
// count as a pointer in a transaction, so a batch of several, larger
// together than a transaction's budget, is still one ordinary transaction;
// a record up to the value limit (2.4 MB) is kept whatever the memtables'
// size, and reads back whole after a reopen; a larger one is refused with
// the object's name.
func TestLargeRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := MustOpen(t, dir, badger.Options{})
	b := paddedBatch("big-%d", 3, 1_200_000)
	_, err := s.Apply(ctx, b)
	require.NoError(t, err)
	require.Zero(t, s.Stats().Splits.Load(), "3.6 MB of large records are one transaction")

	big := hw("big", nil)
	big.Annotations = map[string]string{"padding": incompressible(2_500_000)}
	_, err = s.PutObject(ctx, state.ActorGit, big)
	require.NoError(t, err)

	huge := hw("huge", nil)
	huge.Annotations = map[string]string{"padding": incompressible(2_600_000)}
	_, err = s.PutObject(ctx, state.ActorGit, huge)
	require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
	require.Contains(t, state.ErrorMessage(err), "Hardware/huge")
	require.Contains(t, state.ErrorMessage(err), "limit of 2516582")

	require.NoError(t, s.Close())
	s = MustOpen(t, dir, badger.Options{})
	got, err := s.GetObject(ctx, big.Key())
	require.NoError(t, err)
	require.Equal(t, big.Annotations["padding"], got.Annotations["padding"])
	got, err = s.GetObject(ctx, b.Objects[2].Object.Key())
	require.NoError(t, err)
	require.Equal(t, b.Objects[2].Object.Annotations["padding"], got.Annotations["padding"])
}
