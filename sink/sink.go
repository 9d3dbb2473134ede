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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// DLQPrefix names a topic's dead-letter topic: dlq-<topic>.
const DLQPrefix = "dlq-"

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
	s.dlq = &kafka.Writer{
		Addr:                   kafka.TCP(opts.Brokers...),
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           10 * time.Millisecond,
		Transport:              Transport(opts.Dialer),
	}
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

// Run consumes until ctx is cancelled (then flushes and commits what it
// holds) or, with UntilEnd, until every partition reached its end offset.
func (s *Sink) Run(ctx context.Context) error {
	defer s.dlq.Close()
	var ends map[string]map[int]int64
	if s.opts.UntilEnd {
		var err error
		if ends, err = s.endOffsets(ctx); err != nil {
			return s.connErr(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: s.opts.GroupID, Brokers: s.opts.Brokers, Dialer: s.opts.Dialer, Topics: s.topics(),
		SessionTimeout: s.opts.SessionTimeout, HeartbeatInterval: s.opts.SessionTimeout / 5,
		RebalanceTimeout: s.opts.SessionTimeout, StartOffset: kafka.FirstOffset,
	})
	if err != nil {
		return s.connErr(fmt.Errorf("sink: join group %s: %w", s.opts.GroupID, err))
	}
	defer group.Close()

	var (
		mu       sync.Mutex
		reached  = map[string]bool{}
		firstErr error
	)
	done := func(topic string, partition int) {
		mu.Lock()
		defer mu.Unlock()
		reached[fmt.Sprintf("%s/%d", topic, partition)] = true
		total := 0
		for _, ps := range ends {
			total += len(ps)
		}
		if len(reached) == total {
			stop() // every partition is at its end offset
		}
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop()
	}
	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			return s.connErr(fmt.Errorf("sink: group %s: %w", s.opts.GroupID, err))
		}
		var wg sync.WaitGroup
		commits := newCommitter(gen)
		for topic, assigned := range gen.Assignments {
			for _, a := range assigned {
				end := int64(-1)
				if ends != nil {
					end = ends[topic][a.ID]
				}
				p := &partition{s: s, commits: commits, topic: topic, id: a.ID, start: a.Offset, end: end, route: s.routes[topic], m: s.metrics.forPartition(topic, a.ID)}
				wg.Add(1)
				gen.Start(func(genCtx context.Context) {
					defer wg.Done()
					if err := p.consume(runCtx, genCtx, done); err != nil {
						fail(err)
					}
				})
			}
		}
		wg.Wait()
		commits.stop()
		if runCtx.Err() != nil {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// connErr adds to a failure to talk to the brokers what the connection
// used, since a broker that refuses TLS or credentials often just closes
// the connection ("unexpected EOF").
func (s *Sink) connErr(err error) error {
	var kerr kafka.Error
	if errors.As(err, &kerr) || errors.Is(err, context.Canceled) {
		return err // the broker answered: the connection is not the problem
	}
	d := s.opts.Dialer
	how := "plaintext, no SASL"
	if d != nil {
		how = "plaintext"
		if d.TLS != nil {
			how = "TLS"
		}
		if d.SASLMechanism != nil {
			how += ", SASL " + d.SASLMechanism.Name()
		} else {
			how += ", no SASL"
		}
	}
	return fmt.Errorf("%w (brokers %s over %s: check kafka.brokers, kafka.tls and kafka.sasl)", err, strings.Join(s.opts.Brokers, ","), how)
}

// endOffsets captures the current end offset of every partition.
func (s *Sink) endOffsets(ctx context.Context) (map[string]map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(s.opts.Brokers...), Transport: Transport(s.opts.Dialer)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: s.topics()})
	if err != nil {
		return nil, fmt.Errorf("sink: metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("sink: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sink: end offsets: %w", err)
	}
	out := map[string]map[int]int64{}
	for topic, ps := range res.Topics {
		out[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("sink: end offset of %s/%d: %w", topic, p.Partition, p.Error)
			}
			out[topic][p.Partition] = p.LastOffset
		}
	}
	return out, nil
}

// committer merges the commits of a generation's partitions that are
// waiting at the same moment into one request: a commit costs a round trip
// and most of a millisecond of CPU in kafka-go. Each partition still waits
// for its own commit before it starts its next batch.
type committer struct {
	gen  *kafka.Generation
	reqs chan commitReq
	quit chan struct{}
	done chan struct{}
}

type commitReq struct {
	topic     string
	partition int
	offset    int64
	result    chan error
}

func newCommitter(gen *kafka.Generation) *committer {
	c := &committer{gen: gen, reqs: make(chan commitReq, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for {
		var batch []commitReq
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.quit:
			return
		}
	more:
		for {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		offsets := map[string]map[int]int64{}
		for _, r := range batch {
			if offsets[r.topic] == nil {
				offsets[r.topic] = map[int]int64{}
			}
			offsets[r.topic][r.partition] = r.offset
		}
		err := c.gen.CommitOffsets(offsets)
		for _, r := range batch {
			r.result <- err
		}
	}
}

// commit commits one partition's offset and waits for the result.
func (c *committer) commit(topic string, partition int, offset int64) error {
	r := commitReq{topic: topic, partition: partition, offset: offset, result: make(chan error, 1)}
	c.reqs <- r
	return <-r.result
}

// stop ends the committer once no partition of its generation runs.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
}

// partition is the consumer of one assigned Kafka partition. It reads the
// next batch while the one before it is written and committed in the
// background, so a batch's fsyncs and commit round trip overlap the reading
// and parsing of the next; it never starts writing a batch before the one
// before it is committed, so at most one batch is ever durable but
// uncommitted.
//
// A batch that reaches its flush limits while the one before it is still
// being written keeps reading, up to ReadAhead times those limits, and is
// handed off the moment that write is committed, as one file per partition
// date like any batch. With a backlog, the time a write and its commit take
// (fsyncs, a broker round trip) is then shared by more messages instead of
// stalling the partition after each flush_messages, and the bronze files
// are fewer and larger: with 1,000-message files, a file's fixed costs
// (Parquet footer, two fsyncs) cost a sixth of the sink's throughput.
type partition struct {
	s       *Sink
	commits *committer
	topic   string
	id      int
	start   int64
	end     int64 // -1: no end (long-running)
	route   route
	m       partitionMetrics
	log     *slog.Logger
	// genCtx ends with the generation that assigned the partition.
	genCtx context.Context
	// ctx is the reading's: it ends with the generation, the run, or a
	// failed background flush.
	ctx context.Context
	// flushCtx bounds writes and commits: it ends with the generation, or
	// the shutdown timeout after the run ends.
	flushCtx context.Context
	// abort stops the reading when a background flush fails.
	abort context.CancelCauseFunc

	encs     chan *bronze.Encoder // idle Parquet writers, reused
	open     *batch               // the batch being read
	spare    *batch               // a written batch, for reuse
	next     int64                // offset after the last message read
	inflight chan error
	// written ends when the batch in flight is committed or failed, or
	// with ctx.
	written context.Context
	// due ends the open batch's read at its age deadline, or, once the
	// batch is full and waits for the one in flight, when that is written.
	due       context.Context
	cancelDue context.CancelFunc
	ahead     bool // the open batch is full and reads ahead
	// day caches the partition date of the last timestamp's Unix day.
	day     int64
	dayDate medtype.Date
}

// ReadAhead bounds how far past its flush limits a batch reads while the
// batch before it is written, and so what a crash can replay: at most
// ReadAhead times sink.flush_messages per partition.
const ReadAhead = 4

// batch is the messages read since the previous hand-off.
type batch struct {
	recs   []bronze.Record // routable messages, in offset order
	dates  []medtype.Date  // the partition date of each of recs
	dead   []kafka.Message
	count  int
	bytes  int64
	opened time.Time
	next   int64 // the offset to commit once the batch is durable
}

// newBatch reuses the last written batch's slices: allocating and growing
// them for every batch cost a tenth of the sink's CPU.
func (p *partition) newBatch() *batch {
	if b := p.spare; b != nil {
		p.spare = nil
		return b
	}
	n := min(p.s.opts.Sink.FlushMessages, 1<<16)
	return &batch{recs: make([]bronze.Record, 0, n), dates: make([]medtype.Date, 0, n)}
}

// encoder returns an idle Parquet writer of the partition: building one
// cost a quarter of a millisecond per file.
func (p *partition) encoder() *bronze.Encoder {
	select {
	case e := <-p.encs:
		return e
	default:
		return new(bronze.Encoder)
	}
}

func (p *partition) reuse(e *bronze.Encoder) {
	select {
	case p.encs <- e:
	default:
	}
}

// recycle empties a written batch for reuse, dropping its references to
// message bytes.
func (b *batch) recycle() *batch {
	clear(b.recs)
	clear(b.dead)
	*b = batch{recs: b.recs[:0], dates: b.dates[:0], dead: b.dead[:0]}
	return b
}

type dateGroup struct {
	date medtype.Date
	recs []bronze.Record
}

// byDate groups the records by partition date, one bronze file each, in
// order of first appearance and in offset order within a date. The usual
// batch, all of one date, is its own slice.
func (b *batch) byDate() []dateGroup {
	if len(b.dates) == 0 {
		return nil
	}
	if !slices.ContainsFunc(b.dates, func(d medtype.Date) bool { return d != b.dates[0] }) {
		return []dateGroup{{date: b.dates[0], recs: b.recs}}
	}
	at := map[medtype.Date]int{}
	var groups []dateGroup
	for i, d := range b.dates {
		j, ok := at[d]
		if !ok {
			j, at[d] = len(groups), len(groups)
			groups = append(groups, dateGroup{date: d})
		}
		groups[j].recs = append(groups[j].recs, b.recs[i])
	}
	return groups
}

// recordSize is what a message counts against the byte limits.
func recordSize(value, key int) int64 { return int64(value + key + 64) }

// release returns a batch's bytes and buffer to the process-wide limits.
func (p *partition) release(b *batch) {
	if b.count > 0 {
		p.s.buffered.Add(-b.bytes)
		p.s.open.Add(-1)
	}
}

// consume reads the partition until the generation or the run ends,
// flushing batches; at the end it flushes what it holds and commits.
func (p *partition) consume(runCtx, genCtx context.Context, done func(string, int)) error {
	p.log = p.s.opts.Log.With("topic", p.topic, "partition", p.id)
	r := kafka.NewReader(ReaderConfig(p.s.opts.Brokers, p.topic, p.id, p.s.opts.Dialer, p.s.opts.UntilEnd))
	defer r.Close()
	if err := r.SetOffset(p.start); err != nil {
		return err
	}
	p.open = p.newBatch()
	p.encs = make(chan *bronze.Encoder, ReadAhead)
	p.next = -1
	p.genCtx = genCtx
	live, cancel := mergeCtx(runCtx, genCtx)
	defer cancel()
	ctx, abort := context.WithCancelCause(live)
	defer abort(nil)
	p.ctx, p.abort = ctx, abort
	flushCtx, cancelFlush := flushContext(runCtx, genCtx, p.s.opts.Sink.ShutdownTimeout)
	defer cancelFlush()
	p.flushCtx = flushCtx
	// A flush in progress finishes before the partition is let go: its
	// commit belongs to this generation. Its error, if any, was reported
	// by the path that returns. A batch left unwritten (the generation
	// ended, or an error) is replayed by the partition's next reader.
	defer func() { p.release(p.open) }()
	defer p.wait()
	// Nothing to read: an empty partition (end 0; the start is then the
	// relative FirstOffset, -2), or a committed offset already at the end.
	if p.end == 0 || (p.end > 0 && p.start >= p.end) {
		done(p.topic, p.id)
	}
	for {
		if p.end >= 0 && p.next >= p.end {
			if err := p.flush(); err != nil {
				return p.stopped(live, err)
			}
			done(p.topic, p.id)
			<-ctx.Done()
			return nil
		}
		// An open batch reads under one deadline, its age limit; an empty
		// one waits for the next message. (A timeout per fetch cost more
		// CPU than the rest of the sink; BENCHMARKS.md.)
		readCtx := ctx
		if p.open.count > 0 {
			if p.due == nil {
				p.due, p.cancelDue = context.WithDeadline(ctx, p.open.opened.Add(p.s.opts.Sink.FlushInterval))
			}
			readCtx = p.due
		}
		msg, err := r.FetchMessage(readCtx)
		switch {
		case err == nil:
			p.add(msg)
			if err := p.flushIfFull(); err != nil {
				return p.stopped(live, err)
			}
		case live.Err() == nil && ctx.Err() != nil:
			// A background flush failed.
			return p.stopped(live, p.wait())
		case live.Err() != nil:
			// Rebalance or shutdown: flush what we hold and commit it,
			// within the shutdown timeout, unless the generation is gone.
			if genCtx.Err() != nil {
				// A new generation may own the partition now; its offsets
				// are not ours to commit. The batch is replayed there.
				p.log.Info("generation ended; leaving the uncommitted batch to the next owner", "messages", p.open.count)
				return nil
			}
			if err := p.flush(); err != nil && !errors.Is(err, errGenerationEnded) {
				return err // a shutdown that could not make its batch durable
			}
			return nil
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			// The open batch's age limit, or the batch before a full one
			// was written.
			if p.open.count > 0 {
				if err := p.handOff(); err != nil {
					return p.stopped(live, err)
				}
			}
		default:
			cancelFlush() // the sink fails: the batch in flight is replayed
			return fmt.Errorf("sink: read %s/%d: %w", p.topic, p.id, err)
		}
	}
}

// ReaderConfig is how the sink reads one partition (the benchmark's
// ceiling reads the same way). Fetches have kafka-go's default size, 1 MB:
// 10 MB fetches cost the broker (kfake) three times the CPU per message,
// for the sink and a bare consumer alike (BENCHMARKS.md). A fetch waits up
// to a second for new messages; in --until-end mode a fifth of that, since
// the last fetch of each partition finds nothing and closing its reader
// waits for it.
func ReaderConfig(brokers []string, topic string, partition int, dialer *kafka.Dialer, untilEnd bool) kafka.ReaderConfig {
	wait := time.Second
	if untilEnd {
		wait = 200 * time.Millisecond
	}
	return kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, Dialer: dialer, MaxWait: wait, MinBytes: 1, MaxBytes: 1e6}
}

// flushContext ends when the generation ends, or grace after the run ends.
func flushContext(runCtx, genCtx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	stopGen := context.AfterFunc(genCtx, cancel)
	stopRun := context.AfterFunc(runCtx, func() { time.AfterFunc(grace, cancel) })
	return ctx, func() { stopGen(); stopRun(); cancel() }
}

// errGenerationEnded stops a partition's consumer without failing the sink.
var errGenerationEnded = errors.New("generation ended")

func (p *partition) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, errGenerationEnded) {
		return nil
	}
	return err
}

func (p *partition) add(msg kafka.Message) {
	b := p.open
	if b.count == 0 {
		b.opened = time.Now()
		p.s.open.Add(1)
	}
	b.count++ // a marker too: the batch's commit moves past its offset
	p.next = msg.Offset + 1
	p.m.lag.Set(float64(max(msg.HighWaterMark-msg.Offset-1, 0)))
	if txnMarker(msg) {
		p.s.stats.Markers.Add(1)
		p.m.markers.Inc()
		return
	}
	size := recordSize(len(msg.Value), len(msg.Key))
	b.bytes += size
	p.s.buffered.Add(size)
	p.s.stats.Consumed.Add(1)
	p.m.consumed.Inc()
	p.m.bytes.Add(float64(len(msg.Value) + len(msg.Key)))
	p.s.stats.Bytes.Add(int64(len(msg.Value) + len(msg.Key)))
	now := time.Now()
	et, err := p.route.ts.Of(msg.Value, now)
	if err != nil {
		msg.Headers = append(msg.Headers,
			kafka.Header{Key: "error", Value: []byte(err.Error())},
			kafka.Header{Key: "source_topic", Value: []byte(p.topic)},
			kafka.Header{Key: "source_partition", Value: []byte(strconv.Itoa(p.id))},
			kafka.Header{Key: "source_offset", Value: []byte(strconv.FormatInt(msg.Offset, 10))})
		b.dead = append(b.dead, msg)
		return
	}
	b.dates = append(b.dates, p.dateOf(et))
	b.recs = append(b.recs, bronze.Record{
		Topic: p.topic, Partition: int32(p.id), Offset: msg.Offset, Key: msg.Key, KafkaTS: msg.Time,
		IngestedAt: now.UTC(), Headers: headersJSON(msg.Headers),
		// kafka-go gives every message a value of its own and nothing
		// writes to it, so the payload shares its bytes instead of
		// copying them.
		Payload: unsafe.String(unsafe.SliceData(msg.Value), len(msg.Value)), EventTime: et,
	})
}

// txnMarker reports whether msg is a transaction's commit or abort marker.
// kafka-go v0.4.51 hands these control records over as messages (it parses
// a batch's control bit and never tests it: segmentio/kafka-go#1446), and
// the sink would otherwise send one to the DLQ per transaction and
// partition. kafka.Message does not carry the bit, so a marker is told by
// its fixed layout: a 4-byte key of version 0 and type 0 (abort) or 1
// (commit), a 6-byte value of version 0 and the coordinator epoch, and no
// headers. A real message of that shape is not JSON and would only have
// gone to the DLQ; skipped markers are counted.
func txnMarker(msg kafka.Message) bool {
	k, v := msg.Key, msg.Value
	return len(k) == 4 && len(v) == 6 && len(msg.Headers) == 0 &&
		k[0] == 0 && k[1] == 0 && k[2] == 0 && k[3] <= 1 && v[0] == 0 && v[1] == 0
}

// dateOf is medtype.DateOf, remembered for the last Unix day: consecutive
// messages are mostly of the same day.
func (p *partition) dateOf(t time.Time) medtype.Date {
	u := t.Unix()
	day := u / 86400
	if u < 0 && u%86400 != 0 {
		day--
	}
	if day != p.day || p.dayDate.IsZero() {
		p.day, p.dayDate = day, medtype.DateOf(t)
	}
	return p.dayDate
}

// headersJSON renders message headers as a JSON object of strings.
func headersJSON(hs []kafka.Header) string {
	if len(hs) == 0 {
		return "{}"
	}
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// flushIfFull hands the open batch off when it reached a limit. When it
// reached its own count or size limit while the batch before it is still
// being written, it reads ahead instead, up to ReadAhead times the limits;
// the process-wide byte budget and buffer cap never wait.
func (p *partition) flushIfFull() error {
	c, b := p.s.opts.Sink, p.open
	global := p.s.buffered.Load() >= int64(c.MemoryBudget) || p.s.open.Load() > int64(c.MaxOpenBuffers)
	if !global && b.count < c.FlushMessages && b.bytes < int64(c.FlushBytes) {
		return nil
	}
	if global || p.written == nil || p.written.Err() != nil ||
		b.count >= ReadAhead*c.FlushMessages || b.bytes >= ReadAhead*int64(c.FlushBytes) {
		return p.handOff()
	}
	if !p.ahead {
		// Read on until the write in flight is committed or the age limit.
		p.ahead = true
		if p.cancelDue != nil {
			p.cancelDue()
		}
		p.due, p.cancelDue = context.WithDeadline(p.written, b.opened.Add(c.FlushInterval))
	}
	return nil
}

// handOff starts writing the open batch in the background, once the batch
// before it is committed, and opens a new one.
func (p *partition) handOff() error {
	if err := p.wait(); err != nil {
		return err
	}
	if p.open.count == 0 {
		return nil // nothing read since the last hand-off
	}
	b := p.open
	b.next = p.next
	p.open = p.newBatch()
	if p.cancelDue != nil {
		p.cancelDue()
		p.due, p.cancelDue = nil, nil
	}
	p.ahead = false
	result := make(chan error, 1)
	written, markWritten := context.WithCancel(p.ctx)
	p.inflight, p.written = result, written
	go func() {
		err := p.write(b)
		if err != nil {
			p.abort(err)
		} else {
			p.spare = b.recycle() // taken only after the result is received
		}
		result <- err
		markWritten()
	}()
	return nil
}

// wait returns the result of the flush in progress, if any.
func (p *partition) wait() error {
	if p.inflight == nil {
		return nil
	}
	err := <-p.inflight
	p.inflight = nil
	return err
}

// flush writes and commits everything read so far.
func (p *partition) flush() error {
	if err := p.handOff(); err != nil {
		return err
	}
	return p.wait()
}

// write makes a batch durable (bronze files, then DLQ messages), then
// commits the offset after it. Storage and DLQ writes are retried with
// backoff until they succeed or the flush context ends; nothing is
// committed before.
func (p *partition) write(b *batch) error {
	defer p.release(b)
	ctx, log := p.flushCtx, p.log
	start := time.Now()
	dom := p.route.domain
	// The batch's files and dead letters are written side by side, so
	// their fsyncs and round trips overlap; the commit waits for all.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ReadAhead)
	files := b.byDate()
	for _, file := range files {
		date, recs := file.date, file.recs
		g.Go(func() error {
			f := bronze.File{Domain: dom.Name, PartitionKey: dom.PartitionKey, Date: date, Topic: p.topic, Partition: int32(p.id), StartOffset: recs[0].Offset}
			enc := p.encoder()
			defer p.reuse(enc)
			if err := p.s.retry(gctx, log, "write bronze "+f.Key(), func() error { return enc.Put(gctx, p.s.opts.Bucket, f, recs) }); err != nil {
				return err
			}
			p.s.stats.Files.Add(1)
			p.s.stats.Written.Add(int64(len(recs)))
			p.m.files.Inc()
			p.m.written.Add(float64(len(recs)))
			return nil
		})
	}
	if len(b.dead) > 0 {
		g.Go(func() error {
			msgs := make([]kafka.Message, len(b.dead))
			for i, m := range b.dead {
				msgs[i] = kafka.Message{Topic: DLQPrefix + p.topic, Key: m.Key, Value: m.Value, Headers: m.Headers, Time: m.Time}
			}
			if err := p.s.retry(gctx, log, "write dead letters to "+DLQPrefix+p.topic, func() error { return p.s.dlq.WriteMessages(gctx, msgs...) }); err != nil {
				return err
			}
			p.s.stats.DLQ.Add(int64(len(msgs)))
			p.m.dlq.Add(float64(len(msgs)))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := p.commits.commit(p.topic, p.id, b.next); err != nil {
		if p.genCtx.Err() != nil {
			// A rebalance ended the generation: the batch is durable but
			// uncommitted, and the partition's next owner replays it.
			log.Info("generation ended before the commit; the next owner replays the batch", "messages", b.count)
			return errGenerationEnded
		}
		return fmt.Errorf("sink: commit %s/%d at %d: %w", p.topic, p.id, b.next, err)
	}
	if p.s.opts.OnCommit != nil {
		p.s.opts.OnCommit(p.topic, p.id, b.next)
	}
	p.s.metrics.flush.Observe(time.Since(start).Seconds())
	log.Debug("flushed", "messages", b.count, "files", len(files), "dead_letters", len(b.dead), "committed", b.next, "ms", time.Since(start).Milliseconds())
	return nil
}

// retry runs fn with exponential backoff (100 ms up to 10 s) until it
// succeeds or ctx ends; meanwhile /healthz reports the error.
func (s *Sink) retry(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	failing := false
	defer func() {
		if failing {
			s.retrying.Add(-1)
		}
	}()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		s.lastFailure.Store(what + ": " + err.Error())
		if !failing {
			failing = true
			s.retrying.Add(1)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("sink: %s: %w", what, err)
		}
		log.Warn("retrying after an error; nothing is committed meanwhile", "op", what, "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("sink: %s: %w", what, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// mergeCtx is cancelled when either parent is.
func mergeCtx(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
