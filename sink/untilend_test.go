package sink_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
)

// runSink starts a sink; its result arrives on the returned channel.
func runSink(t *testing.T, o sink.Options, ctx context.Context) (*sink.Sink, chan error) {
	t.Helper()
	s, err := sink.New(o)
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, done
}

// longMember starts a long-running member of the group (the Deployment)
// with the given batch limits and waits until it consumes; the returned
// function stops it and checks that it stopped cleanly.
func longMember(t *testing.T, brokers []string, b storage.Bucket, flush int, interval time.Duration) (stop func()) {
	t.Helper()
	o := options(brokers, b, domainsFor(t, "events"))
	o.Sink.FlushMessages, o.Sink.FlushInterval = flush, interval
	ctx, cancel := context.WithCancel(context.Background())
	s, done := runSink(t, o, ctx)
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	must(t, s.Stats().WaitConsumed(wctx, 1))
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); must(t, <-done) }) }
	t.Cleanup(stop)
	return stop
}

// TestUntilEndBesideALongRunningMember: an --until-end sink in the group of
// a long-running member (the Deployment) gets some partitions or none; it
// counts the others done when the group's committed offsets reach their
// ends, and exits. Nothing is lost.
func TestUntilEndBesideALongRunningMember(t *testing.T) {
	brokers, msgs := eventBacklog(t, 9000)
	b := localBronze(t)
	stopLong := longMember(t, brokers, b, 500, 200*time.Millisecond)

	o := options(brokers, b, domainsFor(t, "events"))
	o.UntilEnd = true
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	_, done := runSink(t, o, ctx)
	must(t, <-done)
	if ctx.Err() != nil {
		t.Fatal("the --until-end sink waited for the long-running member's partitions until the test's deadline")
	}
	ends := endsOf(msgs, "raw-events")
	for p, off := range committed(t, brokers, "raw-events") {
		if off < ends[p] {
			t.Errorf("the --until-end sink exited with partition %d committed at %d, short of its end %d", p, off, ends[p])
		}
	}
	stopLong()
	if dups := coverage(t, b, brokers, "raw-events"); dups != 0 {
		t.Errorf("%d rows are in bronze twice", dups)
	}
}

// TestOverlappingUntilEndRuns: two --until-end runs of one group at once
// (a cron run that overlaps the one before it) both exit, and nothing is
// lost.
func TestOverlappingUntilEndRuns(t *testing.T) {
	brokers, msgs := eventBacklog(t, 9000)
	b := localBronze(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var dones []chan error
	for _, flush := range []int{100, 150} { // slow enough that both hold partitions before either is done
		o := options(brokers, &faulty{Bucket: b, delay: 200 * time.Millisecond}, domainsFor(t, "events"))
		o.UntilEnd, o.Sink.FlushMessages = true, flush
		_, done := runSink(t, o, ctx)
		dones = append(dones, done)
	}
	for _, done := range dones {
		must(t, <-done)
	}
	if ctx.Err() != nil {
		t.Fatal("an --until-end run waited until the test's deadline")
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
	coverage(t, b, brokers, "raw-events")
}

// TestMaxDuration: an --until-end run whose ends are not reached in
// --max-duration (the long-running member holding the other partitions
// never commits) stops, commits what it read, and fails naming the
// partitions short of their ends.
func TestMaxDuration(t *testing.T) {
	brokers, _ := eventBacklog(t, 3000)
	b := localBronze(t)
	stopLong := longMember(t, brokers, b, 1_000_000, time.Hour) // never commits

	o := options(brokers, b, domainsFor(t, "events"))
	o.UntilEnd, o.MaxDuration = true, 3*time.Second
	start := time.Now()
	_, done := runSink(t, o, context.Background())
	err := <-done
	if err == nil || !regexp.MustCompile(`--max-duration 3s passed before the end offsets were reached; .*short of: raw-events/\d \(end offset \d+\)`).MatchString(err.Error()) {
		t.Fatalf("run: %v, want the --max-duration error naming the partitions", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run took %s, for --max-duration 3s", d)
	}
	stopLong()
	coverage(t, b, brokers, "raw-events")
}
