// Package sink consumes the domains' Kafka topics into bronze Parquet,
// at-least-once: a Kafka consumer group (kafka-go's generation API, for
// exact per-partition control), one batch read per Kafka partition while the
// one before it is written, split by partition date, flushed to bronze and
// only then committed.
//
// A batch flushes when it reaches the message count, byte size or age
// limits, when the process-wide byte budget or buffer cap is reached, on
// shutdown, and at the end of --until-end. Its files are named by their first
// offset, so a batch replayed after a crash rewrites the same objects; the
// duplicates a crash can cause are limited to the one uncommitted batch.
// Messages that cannot be routed (not JSON, no or bad timestamp) go to
// dlq-<topic> with headers naming the error and the source, before the
// commit that covers them.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/storage"
)

// Options configure a sink.
type Options struct {
	Brokers []string
	GroupID string
	Dialer  *kafka.Dialer // TLS and SASL; nil for plaintext
	Domains []config.Domain
	Sink    config.Sink
	Bucket  storage.Bucket
	// UntilEnd consumes up to the end offsets captured at start, flushes,
	// commits and returns.
	UntilEnd bool
	// MaxDuration, with UntilEnd, stops the run (flushing and committing
	// what it read) and fails it if the end offsets were not reached in
	// this time; 0 for no limit.
	MaxDuration time.Duration
	// SessionTimeout of the group membership (default 10s).
	SessionTimeout time.Duration
	// OnCommit, if set, is called after each successful offset commit.
	OnCommit func(topic string, partition int, offset int64)
	Log      *slog.Logger
}

// Stats counts what a sink run did.
type Stats struct {
	Consumed atomic.Int64
	Written  atomic.Int64
	Files    atomic.Int64
	DLQ      atomic.Int64
	// Bytes counts message key and value bytes consumed.
	Bytes atomic.Int64
	// Markers counts transaction markers skipped: they take an offset but
	// are not messages, and count in none of the above.
	Markers atomic.Int64
	// Aborted counts the messages of aborted transactions dropped (they
	// count as consumed, and in nothing after).
	Aborted atomic.Int64
	// Skipped counts offsets the broker no longer had when the sink read
	// past them (retention, compaction): in no bronze file.
	Skipped atomic.Int64
}

// WaitConsumed blocks until at least n messages were consumed or ctx ends.
// It polls: signalling progress per message cost the sink a lock each.
func (st *Stats) WaitConsumed(ctx context.Context, n int64) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for st.Consumed.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumed %d of %d: %w", st.Consumed.Load(), n, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

type route struct {
	domain config.Domain
	ts     bronze.Timestamp
}

// Sink is one consumer-group member.
type Sink struct {
	opts   Options
	routes map[string]route
	dlq    *kafka.Writer
	tr     *kafka.Transport // the DLQ writer's, also for protocol requests
	stats  Stats
	// buffered is the bytes held by all batches, against the memory budget.
	buffered atomic.Int64
	open     atomic.Int64
	metrics  *metrics
	// retrying counts the writes being retried, and lastFailure holds the
	// latest of their errors: one write's success must not hide another's
	// failure (a batch's files and the partitions write concurrently).
	retrying    atomic.Int64
	lastFailure atomic.Value
	// uncommitted lists the partitions that stopped, as the run ended,
	// with offsets read but not committed.
	mu          sync.Mutex
	uncommitted []string
}

// New validates the options and prepares the DLQ writer.
func New(opts Options) (*Sink, error) {
	if len(opts.Brokers) == 0 || opts.GroupID == "" || opts.Bucket == nil {
		return nil, errors.New("sink: brokers, group id and storage are required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.Sink.TopicWait == 0 {
		opts.Sink.TopicWait = time.Minute
	}
	if opts.Sink.DLQMaxMessageBytes == 0 {
		opts.Sink.DLQMaxMessageBytes = 1 << 20
	}
	s := &Sink{opts: opts, routes: map[string]route{}, metrics: newMetrics()}
	s.lastFailure.Store("")
	for _, d := range opts.Domains {
		min, err := d.TimestampBounds.MinTime()
		if err != nil {
			return nil, fmt.Errorf("sink: domain %s: %w", d.Name, err)
		}
		ts := bronze.NewTimestamp(d.TimestampField, bronze.Bounds{Min: min, MaxFuture: d.TimestampBounds.MaxFuture})
		for _, t := range d.Topics {
			s.routes[t] = route{domain: d, ts: ts}
		}
	}
	if len(s.routes) == 0 {
		return nil, errors.New("sink: no domain lists a topic")
	}
	s.tr = Transport(opts.Dialer)
	s.dlq = newDLQWriter(opts.Brokers, s.tr, int(opts.Sink.DLQMaxMessageBytes))
	return s, nil
}

// Stats returns the run's counters.
func (s *Sink) Stats() *Stats { return &s.stats }

func (s *Sink) topics() []string {
	var out []string
	for t := range s.routes {
		out = append(out, t)
	}
	return out
}

// groupWatchInterval is how often --until-end asks for the group's
// committed offsets, for the partitions other members hold.
const groupWatchInterval = 500 * time.Millisecond

// Run consumes until ctx is cancelled (then flushes and commits what it
// holds) or, with UntilEnd, until every partition reached its end offset.
func (s *Sink) Run(ctx context.Context) error {
	defer s.dlq.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var until *untilEnd
	if s.opts.UntilEnd {
		ends, err := s.endOffsets(ctx)
		if err != nil {
			return s.connErr(err)
		}
		until = newUntilEnd(ends, stop)
		client := &kafka.Client{Addr: kafka.TCP(s.opts.Brokers...), Transport: s.tr}
		go until.watchGroup(runCtx, client, s.opts.GroupID, groupWatchInterval)
		if s.opts.MaxDuration > 0 {
			defer time.AfterFunc(s.opts.MaxDuration, until.expire).Stop()
		}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: s.opts.GroupID, Brokers: s.opts.Brokers, Dialer: s.opts.Dialer, Topics: s.topics(),
		SessionTimeout: s.opts.SessionTimeout, HeartbeatInterval: s.opts.SessionTimeout / 5,
		RebalanceTimeout: s.opts.SessionTimeout, StartOffset: kafka.FirstOffset, JoinGroupBackoff: time.Second,
	})
	if err != nil {
		return s.connErr(fmt.Errorf("sink: join group %s: %w", s.opts.GroupID, err))
	}
	defer group.Close()

	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop()
	}
	wait := topicWait{limit: s.opts.Sink.TopicWait}
	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			if err := s.joinFailed(err, &wait); err != nil {
				return err
			}
			continue // kafka-go joins again, after a backoff
		}
		_ = wait.check(nil, nil) // joined
		s.consumeGeneration(runCtx, gen, until, fail)
		if runCtx.Err() != nil {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(firstErr, until.err(s.opts.MaxDuration), s.uncommittedErr())
}

// consumeGeneration runs a consumer for each partition the generation
// assigned, until they all return (the generation or the run ended).
func (s *Sink) consumeGeneration(runCtx context.Context, gen *kafka.Generation, until *untilEnd, fail func(error)) {
	var wg sync.WaitGroup
	commits := newCommitter(gen)
	defer commits.stop()
	for topic, assigned := range gen.Assignments {
		for _, a := range assigned {
			p := &partition{s: s, commits: commits, topic: topic, id: a.ID, start: a.Offset, end: until.end(topic, a.ID),
				route: s.routes[topic], m: s.metrics.forPartition(topic, a.ID)}
			wg.Add(1)
			gen.Start(func(genCtx context.Context) {
				defer wg.Done()
				if err := p.consume(runCtx, genCtx, until.done); err != nil {
					fail(err)
				}
			})
		}
	}
	wg.Wait()
}

// leftUncommitted records a partition that stopped, as the run ended,
// with offsets read but not committed.
func (s *Sink) leftUncommitted(p *partition, cause error) {
	from, to := p.committed.Load(), p.next
	why := "the sink stopped before they were written"
	if cause != nil {
		why = cause.Error()
	}
	from = max(from, 0)
	s.opts.Log.Error("offsets not committed as the sink stopped; the next run reads them again",
		"topic", p.topic, "partition", p.id, "from", from, "to", to, "error", why)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uncommitted = append(s.uncommitted, fmt.Sprintf("%s/%d offsets %d to %d (%s)", p.topic, p.id, from, to-1, why))
}

// uncommittedErr is the error a run ends with when partitions stopped
// with offsets not committed, or nil.
func (s *Sink) uncommittedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.uncommitted) == 0 {
		return nil
	}
	slices.Sort(s.uncommitted)
	return fmt.Errorf("sink: stopped with offsets not committed (the next run reads them again; bronze may hold them already): %s",
		strings.Join(s.uncommitted, "; "))
}

// joinFailed decides on an error from joining the group: nil to retry (the
// group joins again by itself), or the error that stops the sink.
func (s *Sink) joinFailed(err error, wait *topicWait) error {
	s.metrics.kafkaErrors.WithLabelValues("join").Inc()
	if permanent(err) {
		return s.connErr(fmt.Errorf("sink: group %s: %w", s.opts.GroupID, err))
	}
	if werr := wait.check(err, s.topics()); werr != nil {
		return s.connErr(werr)
	}
	s.opts.Log.Warn("retrying after an error from the group; nothing is committed meanwhile", "group", s.opts.GroupID, "error", err)
	return nil
}
