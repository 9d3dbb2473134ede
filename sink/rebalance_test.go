package sink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
)

// missingBelow names the first offset below a commit that is not in
// bronze, or returns "": every offset below a commit must be durable.
func missingBelow(t *testing.T, b storage.Bucket, topic string, partition int, commit int64) string {
	t.Helper()
	rows := bronzeCounts(t, b)
	for o := int64(0); o < commit; o++ {
		if rows[fmt.Sprintf("%s/%d/%d", topic, partition, o)] == 0 {
			return fmt.Sprintf("%s/%d committed %d but offset %d is not in bronze", topic, partition, commit, o)
		}
	}
	return ""
}

// TestRebalance: a second sink joins the group halfway. Nothing is lost,
// the committed offsets end at the end offsets, and every offset committed
// is covered by bronze (no commit for data that was not written).
func TestRebalance(t *testing.T) {
	brokers, msgs := eventBacklog(t, 30_000)
	ends := endsOf(msgs, "raw-events")
	b := localBronze(t)

	var (
		mu       sync.Mutex
		high     = map[int]int64{}
		allDone  = make(chan struct{})
		closed   bool
		violated []string
	)
	onCommit := func(topic string, partition int, offset int64) {
		mu.Lock()
		defer mu.Unlock()
		if v := missingBelow(t, b, topic, partition, offset); v != "" {
			violated = append(violated, v)
		}
		high[partition] = max(high[partition], offset)
		for p, end := range ends {
			if high[p] < end {
				return
			}
		}
		if !closed {
			closed = true
			close(allDone)
		}
	}
	start := func() (*sink.Sink, context.CancelFunc, chan error) {
		o := options(brokers, b, domainsFor(t, "events"))
		o.Sink.FlushMessages, o.Sink.FlushInterval = 500, 200*time.Millisecond
		o.OnCommit = onCommit
		s, err := sink.New(o)
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		return s, cancel, done
	}
	a, stopA, doneA := start()
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, a.Stats().WaitConsumed(wctx, int64(len(msgs)/4)))
	bs, stopB, doneB := start() // joins halfway: the group rebalances
	select {
	case <-allDone:
	case <-wctx.Done():
		t.Fatalf("offsets never reached the end: %v, want %v", high, ends)
	}
	stopA()
	stopB()
	must(t, <-doneA)
	must(t, <-doneB)
	if bs.Stats().Consumed.Load() == 0 {
		t.Fatal("the second sink never got a partition: no rebalance happened")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(violated) > 0 {
		t.Fatalf("offsets committed for data not written: %v", violated)
	}
	counts := bronzeCounts(t, b)
	dups := 0
	for p, end := range ends {
		for o := int64(0); o < end; o++ {
			n := counts[fmt.Sprintf("raw-events/%d/%d", p, o)]
			if n == 0 {
				t.Fatalf("raw-events/%d/%d was lost", p, o)
			}
			dups += n - 1
		}
	}
	t.Logf("rebalance: first sink consumed %d, second %d; %d duplicate rows (replayed, uncommitted batches)",
		a.Stats().Consumed.Load(), bs.Stats().Consumed.Load(), dups)
	if got := committed(t, brokers, "raw-events"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want %v", got, ends)
	}
}
