package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	if got, want := committed(t, brokers, "raw-events"), endOffsets(t, brokers, "raw-events", 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want the end offsets %v (past the markers)", got, want)
	}
}
