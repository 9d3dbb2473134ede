package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchAPI "github.com/segmentio/kafka-go/protocol/fetch"
)

// Records of aborted transactions.
//
// kafka-go's reader does not drop them, even read_committed
// (segmentio/kafka-go#1332): it neither reads a fetch response's list of
// aborted transactions nor tells a message's producer. The sink reads
// read_committed, so it never sees a transaction that is still open. Before
// it writes the first batch of an assignment, and every batch of a
// partition found transactional (a marker read, or a transactional batch
// in a checked range), it fetches the batch's offset range again with the
// protocol API, which carries both, and drops the aborted records. A
// partition without transactions pays one such fetch per assignment. Left
// open: a partition that turns transactional after its first batch, whose
// first transaction aborts across a batch boundary before any marker was
// read, has that transaction's records of the batches before its marker
// written.

// controlAbort is a control record's type when the transaction aborted.
const controlAbort = 0

// abortedOffsets returns the offsets in [from, to) of a topic partition
// that belong to aborted transactions, the way a read_committed Java
// consumer decides: a transactional batch is aborted when its producer has
// an aborted transaction that began at or before the batch and whose abort
// marker comes after it.
//
// transactional reports whether the range holds any transactional batch.
// Each fetch asks for about size bytes, the range's size, so a check reads
// little more than the range.
func abortedOffsets(ctx context.Context, rt kafka.RoundTripper, addr net.Addr, topic string, partition int, from, to, size int64) (aborted map[int64]bool, transactional bool, err error) {
	maxBytes := int32(min(max(size, 64<<10), 4<<20))
	aborted = map[int64]bool{}
	var (
		pending []fetchAPI.ResponseTransaction // aborted transactions not yet begun, by first offset
		seen    = map[fetchAPI.ResponseTransaction]bool{}
		active  = map[int64]bool{} // producers inside an aborted transaction
	)
	for pos := from; pos < to; {
		res, err := rt.RoundTrip(ctx, addr, &fetchAPI.Request{
			// The response's limit is above the partition's: kfake leaves out
			// the aborted transactions of a partition cut by the former.
			ReplicaID: -1, MinBytes: 1, MaxBytes: 2 * maxBytes, IsolationLevel: int8(kafka.ReadCommitted), SessionID: -1, SessionEpoch: -1,
			Topics: []fetchAPI.RequestTopic{{Topic: topic, Partitions: []fetchAPI.RequestPartition{{
				Partition: int32(partition), CurrentLeaderEpoch: -1, FetchOffset: pos, LogStartOffset: -1, PartitionMaxBytes: maxBytes,
			}}}},
		})
		if err != nil {
			return nil, false, fmt.Errorf("fetch %s/%d at %d for aborted transactions: %w", topic, partition, pos, err)
		}
		p, err := onlyPartition(res)
		if err != nil {
			return nil, false, fmt.Errorf("fetch %s/%d at %d for aborted transactions: %w", topic, partition, pos, err)
		}
		for _, txn := range p.AbortedTransactions {
			if !seen[txn] {
				seen[txn] = true
				pending = append(pending, txn)
			}
		}
		slices.SortFunc(pending, func(a, b fetchAPI.ResponseTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
		next := pos
		for _, batch := range batchesOf(p.RecordSet) {
			offsets, isAbort, err := readBatch(batch)
			if err != nil {
				return nil, false, fmt.Errorf("read %s/%d at %d for aborted transactions: %w", topic, partition, pos, err)
			}
			if len(offsets) == 0 {
				continue
			}
			last := slices.Max(offsets)
			next = max(next, last+1)
			for len(pending) > 0 && pending[0].FirstOffset <= last {
				active[pending[0].ProducerID] = true
				pending = pending[1:]
			}
			switch b := batch.(type) {
			case *protocol.ControlBatch:
				transactional = true
				if isAbort {
					delete(active, b.ProducerID)
				}
			case *protocol.RecordBatch:
				transactional = transactional || b.Attributes.Transactional()
				if b.Attributes.Transactional() && active[b.ProducerID] {
					for _, off := range offsets {
						if off >= from && off < to {
							aborted[off] = true
						}
					}
				}
			}
		}
		if next == pos {
			break // nothing more below the last stable offset
		}
		pos = next
	}
	return aborted, transactional, nil
}

func onlyPartition(res kafka.Response) (*fetchAPI.ResponsePartition, error) {
	r, ok := res.(*fetchAPI.Response)
	if !ok || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return nil, errors.New("unexpected fetch response")
	}
	p := &r.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return nil, kafka.Error(p.ErrorCode)
	}
	return p, nil
}

// batchesOf lists the record batches of a fetched record set.
func batchesOf(rs protocol.RecordSet) []protocol.RecordReader {
	switch r := rs.Records.(type) {
	case nil:
		return nil
	case *protocol.RecordStream:
		return r.Records
	default:
		return []protocol.RecordReader{r}
	}
}

// readBatch returns the offsets of a batch's records, and whether it is
// an abort marker.
func readBatch(batch protocol.RecordReader) (offsets []int64, isAbort bool, err error) {
	if c, ok := batch.(*protocol.ControlBatch); ok {
		rec, err := c.ReadControlRecord()
		if err != nil {
			return nil, false, err
		}
		return []int64{rec.Offset}, rec.Type == controlAbort, nil
	}
	for {
		rec, err := batch.ReadRecord()
		if errors.Is(err, io.EOF) {
			return offsets, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		offsets = append(offsets, rec.Offset)
		for _, b := range []protocol.Bytes{rec.Key, rec.Value} {
			if b != nil {
				b.Close()
			}
		}
	}
}
