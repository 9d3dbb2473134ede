package sink_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/medallionlake/medallion/sink"
)

// kcluster is cluster, returning the kfake cluster itself for fault
// injection.
func kcluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "raw-events"),
		kfake.DefaultNumPartitions(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)...)
	must(t, err)
	t.Cleanup(c.Close)
	return c
}

// TestBrokerErrorsAreRetried: each retriable error a broker answers, on each
// request the sink makes, and a dropped connection on each, is retried: an
// --until-end run finishes with every message in bronze exactly once and
// the offsets committed at the end offsets.
func TestBrokerErrorsAreRetried(t *testing.T) {
	msgs := eventMessages(t, 3000)
	type fault struct {
		key      kmsg.Key
		err      *kerr.Error // nil: the broker drops the connection
		topLevel bool
	}
	cases := map[string]fault{
		"join/not_coordinator":                 {kmsg.JoinGroup, kerr.NotCoordinator, true},
		"join/coordinator_loading":             {kmsg.JoinGroup, kerr.CoordinatorLoadInProgress, true},
		"join/dropped":                         {key: kmsg.JoinGroup},
		"sync/rebalance_in_progress":           {kmsg.SyncGroup, kerr.RebalanceInProgress, true},
		"sync/not_coordinator":                 {kmsg.SyncGroup, kerr.NotCoordinator, true},
		"heartbeat/rebalance_in_progress":      {kmsg.Heartbeat, kerr.RebalanceInProgress, true},
		"heartbeat/unknown_member":             {kmsg.Heartbeat, kerr.UnknownMemberID, true},
		"fetch/not_leader":                     {kmsg.Fetch, kerr.NotLeaderForPartition, false},
		"fetch/dropped":                        {key: kmsg.Fetch},
		"list_offsets/not_leader":              {kmsg.ListOffsets, kerr.NotLeaderForPartition, false},
		"list_offsets/timed_out":               {kmsg.ListOffsets, kerr.RequestTimedOut, false},
		"offset_commit/not_coordinator":        {kmsg.OffsetCommit, kerr.NotCoordinator, false},
		"offset_commit/coordinator_loading":    {kmsg.OffsetCommit, kerr.CoordinatorLoadInProgress, false},
		"offset_commit/rebalance_in_progress":  {kmsg.OffsetCommit, kerr.RebalanceInProgress, false},
		"offset_commit/unknown_member":         {kmsg.OffsetCommit, kerr.UnknownMemberID, false},
		"offset_commit/timed_out":              {kmsg.OffsetCommit, kerr.RequestTimedOut, false},
		"offset_commit/dropped":                {key: kmsg.OffsetCommit},
		"offset_fetch/coordinator_loading":     {kmsg.OffsetFetch, kerr.CoordinatorLoadInProgress, true},
		"find_coordinator/coordinator_loading": {kmsg.FindCoordinator, kerr.CoordinatorNotAvailable, true},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := kcluster(t)
			brokers := c.ListenAddrs()
			produce(t, brokers, msgs)
			var hits atomic.Int64
			remove := func() {}
			if f.err != nil {
				h := c.Fault(kfake.Fault{Keys: []kmsg.Key{f.key}, Err: f.err, TopLevel: f.topLevel, Count: 3,
					When: func(kmsg.Request) bool { hits.Add(1); return true }})
				remove = h.Remove
			} else {
				c.ControlKey(int16(f.key), func(kmsg.Request) (kmsg.Response, error, bool) {
					if hits.Add(1) < 3 {
						c.KeepControl()
					} else {
						c.DropControl()
					}
					return nil, errors.New("injected: connection dropped"), true
				})
			}
			// Storage is slow enough that the run outlives a few heartbeats.
			b := localBronze(t)
			o := options(brokers, &faulty{Bucket: b, delay: 100 * time.Millisecond}, domainsFor(t, "events"))
			o.UntilEnd = true
			o.Sink.FlushMessages = 300
			s, err := sink.New(o)
			must(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			must(t, s.Run(ctx))
			remove() // before the checks, which make requests of their own
			if hits.Load() == 0 {
				t.Fatal("the fault never hit: the test proves nothing")
			}
			if got := bronzeRows(t, b); len(got) != len(msgs) { // fails on a message present twice
				t.Fatalf("bronze has %d messages, want %d", len(got), len(msgs))
			}
			if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("committed %v, want %v", got, want)
			}
		})
	}
}

// TestPermanentBrokerErrorsStop: errors that retrying cannot fix stop the
// sink with an error that names the topic, group or config key, and nothing
// is committed.
func TestPermanentBrokerErrorsStop(t *testing.T) {
	msgs := eventMessages(t, 1000)
	cases := map[string]struct {
		fault kfake.Fault
		want  string
	}{
		"topic_authorization": {kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.TopicAuthorizationFailed, Count: -1},
			`read raw-events/\d: .*Topic Authorization Failed`},
		"group_authorization": {kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Err: kerr.GroupAuthorizationFailed, TopLevel: true, Count: -1},
			`group medallion-test: .*Group Authorization Failed`},
		"unknown_topic": {kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata, kmsg.ListOffsets}, Err: kerr.UnknownTopicOrPartition, Count: -1},
			`the brokers do not know topic raw-events after 1s \(sink.topic_wait\)`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := kcluster(t)
			brokers := c.ListenAddrs()
			produce(t, brokers, msgs)
			c.Fault(tc.fault)
			b := localBronze(t)
			o := options(brokers, b, domainsFor(t, "events"))
			o.UntilEnd = true
			o.Sink.TopicWait = time.Second
			s, err := sink.New(o)
			must(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = s.Run(ctx)
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("run: %v, want an error matching %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("the sink retried until the test's deadline")
			}
			for p, off := range committed(t, brokers, "raw-events") {
				if off >= 0 {
					t.Errorf("partition %d was committed at %d", p, off)
				}
			}
			if strings.Contains(err.Error(), "sink: sink:") {
				t.Errorf("the error repeats its prefix: %v", err)
			}
		})
	}
}
