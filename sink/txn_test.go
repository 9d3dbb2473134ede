package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/sink"
)

// TestTransactionMarkers: a topic written by a transactional producer holds
// a commit marker per transaction and partition. kafka-go hands markers
// over as messages; the sink skips and counts them instead of sending them
// to the DLQ, and its commits move past them to the end offsets.
func TestTransactionMarkers(t *testing.T) {
	brokers := cluster(t, "raw-events")
	msgs := eventMessages(t, 600)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("medallion-test-tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	half := len(msgs) / 2
	for _, txn := range [][]int{{0, half}, {half, len(msgs)}} { // two transactions
		must(t, cl.BeginTransaction())
		for _, m := range msgs[txn[0]:txn[1]] {
			must(t, cl.ProduceSync(ctx, &kgo.Record{Topic: m.Topic, Partition: m.Partition, Key: m.Key, Value: m.Value}).FirstErr())
		}
		must(t, cl.EndTransaction(ctx, kgo.TryCommit))
	}

	fs := localBronze(t)
	o := options(brokers, fs, domainsFor(t, "events"))
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	must(t, s.Run(ctx))

	st := s.Stats()
	if got := bronzeRows(t, fs); len(got) != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", len(got), len(msgs))
	}
	if st.DLQ.Load() != 0 || st.Markers.Load() != 6 || st.Consumed.Load() != int64(len(msgs)) {
		t.Fatalf("dead letters %d, markers %d, consumed %d: want 0, 6 (two transactions over three partitions) and %d",
			st.DLQ.Load(), st.Markers.Load(), st.Consumed.Load(), len(msgs))
	}
	if got, want := committed(t, brokers, "raw-events"), testenv.EndOffsets(t, brokers, "raw-events", 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want the end offsets %v (past the markers)", got, want)
	}
}

// TestAbortedTransactionsAreDropped: bronze holds only the records of
// committed transactions, from confluent-kafka (three transactions, the
// second aborted) and from two franz-go producers whose transactions
// interleave on one partition, one aborting, each transaction spanning
// several of the sink's batches.
func TestAbortedTransactionsAreDropped(t *testing.T) {
	brokers := cluster(t, "raw-events")
	const n = 120
	pythonProduce(t, brokers, 0, "lz4", n, "py-txn", true)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		must(t, err)
		t.Cleanup(cl.Close)
		must(t, cl.BeginTransaction())
		return cl
	}
	keep, abort := client("medallion-keep"), client("medallion-abort")
	for i := range 2 * n { // interleaved on partition 1
		for _, c := range []struct {
			cl  *kgo.Client
			tag string
		}{{keep, "kept"}, {abort, "aborted"}} {
			key := fmt.Sprintf("kgo-%s-%d", c.tag, i)
			v := fmt.Sprintf(`{"event_id":%q,"event_type":"view_item","event_timestamp":"2024-01-15T12:%02d:%02d.000Z"}`, key, i/60%60, i%60)
			must(t, c.cl.ProduceSync(ctx, &kgo.Record{Topic: "raw-events", Partition: 1, Key: []byte(key), Value: []byte(v)}).FirstErr())
		}
	}
	must(t, abort.EndTransaction(ctx, kgo.TryAbort))
	must(t, keep.EndTransaction(ctx, kgo.TryCommit))

	fs := localBronze(t)
	o := options(brokers, fs, domainsFor(t, "events"))
	o.Sink.FlushMessages = 50 // transactions span batches
	s := runToEnd(t, o)

	got := map[string]bool{}
	eachRecord(t, fs, func(_ bronze.File, r bronze.Record) { got[string(r.Key)] = true })
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprintf("py-txn-committed1-%d", i)] = true
		want[fmt.Sprintf("py-txn-committed2-%d", i)] = true
	}
	for i := range 2 * n {
		want[fmt.Sprintf("kgo-kept-%d", i)] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var extra, missing []string
		for k := range got {
			if !want[k] {
				extra = append(extra, k)
			}
		}
		for k := range want {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		t.Fatalf("bronze has %d records, want %d: %d not committed (e.g. %v), %d missing (e.g. %v)",
			len(got), len(want), len(extra), extra[:min(3, len(extra))], len(missing), missing[:min(3, len(missing))])
	}
	if a := s.Stats().Aborted.Load(); a != int64(n+2*n) {
		t.Errorf("dropped %d aborted records, want %d", a, n+2*n)
	}
	ends := testenv.EndOffsets(t, brokers, "raw-events", 3)
	ends[2] = -1 // empty: nothing to commit
	if got := committed(t, brokers, "raw-events"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
}
