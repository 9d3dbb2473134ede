package sink_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
)

// stalling wraps a bucket: the first write whose key matches stalls until
// released, then completes even though its context ended meanwhile, as an
// upload or fsync already under way does (a paused VM, a long GC pause, slow
// network storage).
type stalling struct {
	storage.Bucket
	match    func(key string) bool
	once     sync.Once
	stalled  chan struct{} // closed when the write stalls
	release  chan struct{} // closed by the test
	finished chan error    // the stalled write's result
}

func newStalling(b storage.Bucket, match func(string) bool) *stalling {
	return &stalling{Bucket: b, match: match, stalled: make(chan struct{}), release: make(chan struct{}), finished: make(chan error, 1)}
}

func (s *stalling) Put(ctx context.Context, key string, r io.Reader, md map[string]string) error {
	return s.write(ctx, key, func(ctx context.Context) error { return s.Bucket.Put(ctx, key, r, md) })
}

func (s *stalling) Create(ctx context.Context, key string, r io.Reader, md map[string]string) error {
	return s.write(ctx, key, func(ctx context.Context) error { return s.Bucket.Create(ctx, key, r, md) })
}

func (s *stalling) write(ctx context.Context, key string, put func(context.Context) error) error {
	stall := false
	if s.match(key) {
		s.once.Do(func() { stall = true })
	}
	if !stall {
		return put(ctx)
	}
	close(s.stalled)
	<-s.release
	err := put(context.WithoutCancel(ctx))
	s.finished <- err
	return err
}

// coverage checks that every offset below each partition's committed
// offset is in bronze, and returns how many rows are there more than once.
func coverage(t *testing.T, b storage.Bucket, brokers []string, topic string) (dups int) {
	t.Helper()
	counts := bronzeCounts(t, b)
	for p, off := range committed(t, brokers, topic) {
		for o := int64(0); o < off; o++ {
			n := counts[fmt.Sprintf("%s/%d/%d", topic, p, o)]
			if n == 0 {
				t.Fatalf("%s/%d: offset %d is committed (at %d) but in no bronze file", topic, p, o, off)
			}
			dups += n - 1
		}
	}
	return dups
}

// TestStalledWriterAfterRebalance: a member stalls inside a bronze write for
// longer than its session. The group gives its partitions to a second
// member, which replays them with a larger flush_messages and commits. The
// stalled write then lands: it must not replace the second member's larger
// file, whose offsets are committed.
func TestStalledWriterAfterRebalance(t *testing.T) {
	brokers, msgs := eventBacklog(t, 6000)
	ends := endsOf(msgs, "raw-events")
	fs := localBronze(t)
	zb := newStalling(fs, func(key string) bool { return strings.Contains(key, "/raw-events+0+") })

	zo := options(brokers, zb, domainsFor(t, "events"))
	zo.Sink.FlushMessages, zo.Sink.FlushInterval = 500, time.Hour
	zombie, err := sink.New(zo)
	must(t, err)
	zctx, stopZombie := context.WithCancel(context.Background())
	defer stopZombie()
	zdone := make(chan error, 1)
	go func() { zdone <- zombie.Run(zctx) }()
	<-zb.stalled

	reached := make(chan struct{})
	var once sync.Once
	o := options(brokers, fs, domainsFor(t, "events"))
	o.Sink.FlushMessages, o.Sink.FlushInterval = 2500, 100*time.Millisecond
	o.OnCommit = func(topic string, p int, off int64) {
		if p == 0 && off == ends[0] {
			once.Do(func() { close(reached) })
		}
	}
	second, err := sink.New(o)
	must(t, err)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("the second member never committed partition 0 to its end")
	}
	close(zb.release) // the stalled write wakes up after the rebalance
	zerr := <-zb.finished
	stopZombie()
	must(t, <-zdone)
	stop()
	must(t, <-done)
	if dups := coverage(t, fs, brokers, "raw-events"); dups != 0 {
		t.Fatalf("%d rows are in bronze twice", dups)
	}
	if zerr == nil {
		t.Fatal("the stalled write created its key: the second member had not written it")
	}
	if got := committed(t, brokers, "raw-events")[0]; got != ends[0] {
		t.Fatalf("partition 0 committed %d, want %d", got, ends[0])
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestThreeMembersRebalancing: members with different flush_messages join
// and leave while they consume, so the group rebalances several times with
// batches in flight, and one of them is a zombie: its first write stalls
// until every offset is committed by the others, then lands. Every
// committed offset is in bronze, and the offsets end committed at the end
// offsets.
func TestThreeMembersRebalancing(t *testing.T) {
	brokers, msgs := eventBacklog(t, 30_000)
	ends := endsOf(msgs, "raw-events")
	fs := localBronze(t)
	slow := &faulty{Bucket: fs, delay: 20 * time.Millisecond} // slow enough to rebalance mid-write
	zb := newStalling(slow, func(string) bool { return true })

	var (
		mu      sync.Mutex
		high    = map[int]int64{}
		allDone = make(chan struct{})
		closed  bool
	)
	onCommit := func(_ string, p int, off int64) {
		mu.Lock()
		defer mu.Unlock()
		high[p] = max(high[p], off)
		for q, end := range ends {
			if high[q] < end {
				return
			}
		}
		if !closed {
			closed = true
			close(allDone)
		}
	}
	type member struct {
		s    *sink.Sink
		stop context.CancelFunc
		done chan error
	}
	var members []*member
	start := func(b storage.Bucket, flush int) *member {
		o := options(brokers, b, domainsFor(t, "events"))
		o.Sink.FlushMessages, o.Sink.FlushInterval = flush, 50*time.Millisecond
		o.OnCommit = onCommit
		s, err := sink.New(o)
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{s: s, stop: cancel, done: make(chan error, 1)}
		go func() { m.done <- s.Run(ctx) }()
		members = append(members, m)
		return m
	}
	consumed := func() (n int64) {
		for _, m := range members {
			n += m.s.Stats().Consumed.Load()
		}
		return n
	}
	wait := func(n int) {
		t.Helper()
		deadline := time.After(time.Minute)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for consumed() < int64(n) {
			select {
			case <-deadline:
				t.Fatalf("consumed %d of %d", consumed(), n)
			case <-tick.C:
			}
		}
	}
	first := start(slow, 300)
	wait(len(msgs) / 8)
	start(zb, 700) // rebalance 1; its first write stalls
	<-zb.stalled
	start(slow, 1500) // rebalance 2: the zombie cannot rejoin and is left out
	wait(len(msgs) / 2)
	first.stop() // rebalance 3: a member leaves with batches in flight
	must(t, <-first.done)
	start(slow, 450) // rebalance 4
	select {
	case <-allDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("offsets never reached the end: %v, want %v", high, ends)
	}
	close(zb.release) // the zombie's write lands after everything is committed
	<-zb.finished
	for _, m := range members[1:] {
		m.stop()
		must(t, <-m.done)
	}
	if got := committed(t, brokers, "raw-events"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want %v", got, ends)
	}
	dups := coverage(t, fs, brokers, "raw-events")
	t.Logf("four members consumed %d messages for %d offsets; bronze has %d rows twice", consumed(), len(msgs), dups)
}
