package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// untilEnd tracks --until-end: the end offsets captured at start, and the
// partitions at them. A partition is at its end when this member read to
// it, or when the group's committed offset is at or past it: in a shared
// group (a long-running member, an overlapping cron run) another member
// may hold the partition, and this one would otherwise wait for it
// forever.
type untilEnd struct {
	ends  map[string]map[int]int64
	total int    // partitions in ends
	stop  func() // ends the run

	mu       sync.Mutex
	reached  map[string]bool
	timedOut bool
}

func newUntilEnd(ends map[string]map[int]int64, stop func()) *untilEnd {
	u := &untilEnd{ends: ends, stop: stop, reached: map[string]bool{}}
	for _, ps := range ends {
		u.total += len(ps)
	}
	for topic, ps := range ends {
		for p, end := range ps {
			if end == 0 {
				u.done(topic, p) // empty: nothing to read
			}
		}
	}
	return u
}

// end is the partition's end offset, or -1 without --until-end.
func (u *untilEnd) end(topic string, partition int) int64 {
	if u == nil {
		return -1
	}
	return u.ends[topic][partition]
}

// done marks a partition at its end; the last one ends the run.
func (u *untilEnd) done(topic string, partition int) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reached[fmt.Sprintf("%s/%d", topic, partition)] = true
	if len(u.reached) == u.total {
		u.stop()
	}
}

func (u *untilEnd) pendingLocked() []string {
	var out []string
	for topic, ps := range u.ends {
		for p, end := range ps {
			if !u.reached[fmt.Sprintf("%s/%d", topic, p)] {
				out = append(out, fmt.Sprintf("%s/%d (end offset %d)", topic, p, end))
			}
		}
	}
	slices.Sort(out)
	return out
}

// expire ends the run at --max-duration.
func (u *untilEnd) expire() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reached) < u.total {
		u.timedOut = true
		u.stop()
	}
}

// err is the run's error if --max-duration ended it short of the ends.
func (u *untilEnd) err(limit time.Duration) error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.timedOut {
		return nil
	}
	return fmt.Errorf("sink: --max-duration %s passed before the end offsets were reached; what was read is committed, short of: %s",
		limit, strings.Join(u.pendingLocked(), ", "))
}

// watchGroup marks partitions done whose group committed offset reached
// the end, asking the coordinator every interval until ctx ends. Errors
// are left to the next poll: the watch only ever ends the run earlier.
func (u *untilEnd) watchGroup(ctx context.Context, client *kafka.Client, group string, interval time.Duration) {
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for topic, ps := range u.ends {
		for p := range ps {
			req.Topics[topic] = append(req.Topics[topic], p)
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := client.OffsetFetch(ctx, req)
		if err != nil || res.Error != nil {
			continue
		}
		for topic, ps := range res.Topics {
			for _, p := range ps {
				if p.Error == nil && p.CommittedOffset >= u.end(topic, p.Partition) {
					u.done(topic, p.Partition)
				}
			}
		}
	}
}
