package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
)

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
	// genDone is closed when the generation that assigned the partition
	// ends: the partition may be another member's from then on.
	genDone <-chan struct{}
	// ctx and flushCtx are the partition's two I/O scopes, shared by the
	// reading loop and the background writer (kafka-go and storage take
	// nothing else). ctx is the reading's: it ends with the generation,
	// the run, or a failed background flush. flushCtx bounds writes and
	// commits: it ends with the generation, or the shutdown timeout after
	// the run ends.
	ctx, flushCtx context.Context
	// abort stops the reading when a background flush fails.
	abort context.CancelCauseFunc

	encs     chan *bronze.Encoder // idle Parquet writers, reused
	open     *batch               // the batch being read
	spare    *batch               // a written batch, for reuse
	next     int64                // offset after the last message read
	inflight *flight              // the batch being written, if any
	// due ends the open batch's read at its age deadline, or, once the
	// batch is full and waits for the one in flight, when that is written.
	due       context.Context
	cancelDue context.CancelFunc
	ahead     bool // the open batch is full and reads ahead
	// transactional is set once the partition showed a transaction
	// (txn.go), by the reader or a writer; checked once its first batch
	// was handed off.
	transactional atomic.Bool
	checked       bool
	// committed is the offset this partition last committed (its start
	// before; -1 for none).
	committed atomic.Int64
	// lastErr is the last batch's failure, set by the writer before it
	// reports the batch's result.
	lastErr error
	// held is, per date, the last offset that bronze files found by this
	// assignment's writes hold already (bronze.Created.Through).
	held map[medtype.Date]int64
	// day caches the partition date of the last timestamp's Unix day.
	day     int64
	dayDate medtype.Date
}

// ReadAhead bounds how far past its flush limits a batch reads while the
// batch before it is written, and so what a crash can replay: at most
// ReadAhead times sink.flush_messages per partition.
const ReadAhead = 4

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
	p.genDone = genCtx.Done()
	live, cancel := mergeCtx(runCtx, genCtx)
	defer cancel()
	ctx, abort := context.WithCancelCause(live)
	defer abort(nil)
	p.ctx, p.abort = ctx, abort
	flushCtx, cancelFlush := flushContext(runCtx, genCtx, p.s.opts.Sink.ShutdownTimeout)
	defer cancelFlush()
	p.flushCtx = flushCtx
	p.committed.Store(max(p.start, -1))
	// A flush in progress finishes before the partition is let go: its
	// commit belongs to this generation. Its error, if any, was reported
	// by the path that returns. A batch left unwritten (the generation
	// ended, or an error) is replayed by the partition's next reader.
	defer p.reportUncommitted(runCtx)
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
		case permanent(err):
			cancelFlush() // the sink fails: the batch in flight is replayed
			return fmt.Errorf("sink: read %s/%d: %w", p.topic, p.id, err)
		default:
			// The reader reconnects and retries by itself (with backoff);
			// it reports each error it could not retry away at once.
			p.s.metrics.kafkaErrors.WithLabelValues("fetch").Inc()
			p.log.Warn("retrying after an error from the broker", "op", "fetch", "offset", p.next, "error", err)
		}
	}
}

// reportUncommitted tells the sink, when the run ends with offsets this
// partition read and did not commit (shutdown tells the truth), unless its
// generation ended and nothing else failed: another member owns it now.
// It runs after the batch in flight finished.
func (p *partition) reportUncommitted(runCtx context.Context) {
	handedOver := p.generationEnded() && (p.lastErr == nil || errors.Is(p.lastErr, errGenerationEnded))
	if runCtx.Err() != nil && !handedOver && p.next > p.committed.Load() {
		p.s.leftUncommitted(p, p.lastErr)
	}
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
	if global || p.inflight == nil || p.inflight.over() ||
		b.count >= ReadAhead*c.FlushMessages || b.bytes >= ReadAhead*int64(c.FlushBytes) {
		return p.handOff()
	}
	if !p.ahead {
		// Read on until the write in flight is committed or the age limit.
		p.ahead = true
		if p.cancelDue != nil {
			p.cancelDue()
		}
		p.due, p.cancelDue = context.WithDeadline(p.ctx, b.opened.Add(c.FlushInterval))
		p.inflight.onDone(p.cancelDue)
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
	b.checkAborted = p.transactional.Load() || !p.checked
	p.checked = true
	p.open = p.newBatch()
	if p.cancelDue != nil {
		p.cancelDue()
		p.due, p.cancelDue = nil, nil
	}
	p.ahead = false
	f := newFlight()
	p.inflight = f
	go func() {
		err := p.write(b)
		if err != nil {
			p.lastErr = err
			p.abort(err)
		} else {
			p.spare = b.recycle() // taken only after the result is received
		}
		f.finish(err)
	}()
	return nil
}

// wait returns the result of the flush in progress, if any.
func (p *partition) wait() error {
	if p.inflight == nil {
		return nil
	}
	err := p.inflight.result()
	p.inflight = nil
	return err
}

// generationEnded reports whether the partition's generation is over.
func (p *partition) generationEnded() bool {
	select {
	case <-p.genDone:
		return true
	default:
		return false
	}
}

// flush writes and commits everything read so far.
func (p *partition) flush() error {
	if err := p.handOff(); err != nil {
		return err
	}
	return p.wait()
}

// mergeCtx is cancelled when either parent is.
func mergeCtx(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
