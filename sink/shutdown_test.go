package sink_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShutdownTellsTheTruth: a SIGTERM whose final flush (storage down) or
// final commit (the coordinator refuses it) fails within
// sink.shutdown_timeout ends the run with an error that names every
// partition and the offsets it did not commit, and commits nothing.
func TestShutdownTellsTheTruth(t *testing.T) {
	for _, failing := range []string{"flush", "commit"} {
		t.Run(failing, func(t *testing.T) {
			c := kcluster(t)
			brokers := c.ListenAddrs()
			msgs := eventMessages(t, 3000)
			produce(t, brokers, msgs)
			fs := localBronze(t)
			b := &faulty{Bucket: fs, failed: make(chan struct{}, 1)}
			o := options(brokers, b, domainsFor(t, "events"))
			o.Sink.ShutdownTimeout = time.Second
			sigterm := holdAll(t, o, len(msgs)) // nothing flushes before the shutdown
			want := `injected storage outage`
			if failing == "flush" {
				b.down.Store(true)
			} else {
				c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.CoordinatorLoadInProgress, Count: -1})
				want = `commit raw-events/\d at \d+: .*Group Load In Progress`
			}
			err := sigterm()
			if err == nil || errors.Is(err, context.Canceled) {
				t.Fatalf("a shutdown whose final %s failed returned %v", failing, err)
			}
			ends := endsOf(msgs, "raw-events")
			for p, end := range ends {
				if !regexp.MustCompile(fmt.Sprintf(`raw-events/%d offsets 0 to %d \(.*%s`, p, end-1, want)).MatchString(err.Error()) {
					t.Errorf("the error does not name partition %d, offsets 0 to %d and the cause %q:\n%v", p, end-1, want, err)
				}
			}
			for p, off := range committed(t, brokers, "raw-events") {
				if off >= 0 {
					t.Errorf("partition %d was committed at %d", p, off)
				}
			}
		})
	}
}
