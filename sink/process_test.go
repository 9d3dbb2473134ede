package sink_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/sink"
)

// TestBrokerRestartUnderARunningSink: the broker process is stopped and
// started again on the same port (its state kept on disk) while a sink
// consumes. The sink rides it out: nothing is lost, and nothing is ever
// committed before it is in bronze.
func TestBrokerRestartUnderARunningSink(t *testing.T) {
	bin := testenv.Build(t, "internal/kfakeserver")
	data := t.TempDir()
	args := []string{"-topic", "raw-events", "-partitions", "3", "-data-dir", data}
	k := testenv.StartKfake(t, bin, append(args, "-port", "0", "-messages", "20000")...)
	brokers := []string{k.Addr}
	ends := testenv.EndOffsets(t, brokers, "raw-events", 3)

	fs := localBronze(t)
	o := options(brokers, &faulty{Bucket: fs, delay: 40 * time.Millisecond}, domainsFor(t, "events"))
	o.UntilEnd, o.Sink.FlushMessages = true, 300
	var (
		mu       sync.Mutex
		early    []string
		first    = make(chan struct{})
		once     sync.Once
		restarts int
	)
	o.OnCommit = func(topic string, p int, off int64) {
		mu.Lock()
		defer mu.Unlock()
		if v := missingBelow(t, fs, topic, p, off); v != "" {
			early = append(early, v)
		}
		once.Do(func() { close(first) })
	}
	s, err := sink.New(o)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-first
	k.Stop(t) // the listener goes away mid-run...
	restarts++
	k = testenv.StartKfake(t, bin, append(args, "-port", k.Port())...) // ...and comes back on the same port
	must(t, <-done)
	if ctx.Err() != nil {
		t.Fatal("the sink never finished after the restart")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("offsets committed before their data was in bronze: %v", early)
	}
	if got := committed(t, brokers, "raw-events"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v after %d restart, want the end offsets %v", got, restarts, ends)
	}
	dups := coverage(t, fs, brokers, "raw-events")
	_, metrics := get(t, s, "/metrics")
	t.Logf("after the restart: %d rows twice in bronze; %s", dups, strings.ReplaceAll(grepLines(metrics, "kafka_errors_total"), "\n", ", "))
}
