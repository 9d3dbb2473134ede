package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
)

// write makes a batch durable (bronze files, then DLQ messages), then
// commits the offset after it. Storage and DLQ writes are retried with
// backoff until they succeed or the flush context ends; nothing is
// committed before.
func (p *partition) write(b *batch) error {
	defer p.release(b)
	start := time.Now()
	if err := p.dropAborted(p.flushCtx, b); err != nil {
		return p.abandoned(err, b, 0, "during the write")
	}
	written, err := p.durable(b)
	if err != nil {
		return p.abandoned(err, b, written, "during the write")
	}
	if err := p.commit(b); err != nil {
		return p.abandoned(err, b, written, "before the commit")
	}
	if p.s.opts.OnCommit != nil {
		p.s.opts.OnCommit(p.topic, p.id, b.next)
	}
	p.s.metrics.flush.Observe(time.Since(start).Seconds())
	p.log.Debug("flushed", "messages", b.count, "written", written, "dead_letters", len(b.dead), "committed", b.next, "ms", time.Since(start).Milliseconds())
	return nil
}

// abandoned is a batch's failure, or errGenerationEnded when the partition
// moved to another member meanwhile: its writes were abandoned (their
// context ended with the generation) and the next owner replays the batch,
// writing again what this one wrote but the next owner does not find.
func (p *partition) abandoned(err error, b *batch, written int, when string) error {
	if !p.generationEnded() {
		return err
	}
	p.log.Warn("generation ended "+when+"; the next owner replays the batch", "messages", b.count, "written", written)
	p.m.unconfirmed.Add(float64(written))
	return errGenerationEnded
}

// durable writes the batch's bronze files and dead letters side by side,
// so their fsyncs and round trips overlap, and returns the records it
// wrote to bronze.
func (p *partition) durable(b *batch) (int, error) {
	dom := p.route.domain
	g, gctx := errgroup.WithContext(p.flushCtx)
	g.SetLimit(ReadAhead)
	files := p.unheld(b.byDate())
	created := make([]bronze.Created, len(files))
	for i, file := range files {
		created[i].Through = -1
		g.Go(func() error {
			f := bronze.File{Domain: dom.Name, PartitionKey: dom.PartitionKey, Date: file.date, Topic: p.topic, Partition: int32(p.id)}
			enc := p.encoder()
			defer p.reuse(enc)
			return p.s.retry(gctx, p.log, "write bronze "+f.Key(), func() error {
				c, err := enc.Create(gctx, p.s.opts.Bucket, f, file.recs)
				created[i].Add(c) // a retry finds the files of a failed try taken
				return err
			})
		})
	}
	if len(b.dead) > 0 {
		g.Go(func() error { return p.writeDeadLetters(gctx, b.dead) })
	}
	err := g.Wait()
	return p.count(files, created), err
}

// writeDeadLetters sends the batch's dead letters to dlq-<topic>.
func (p *partition) writeDeadLetters(ctx context.Context, msgs []kafka.Message) error {
	err := p.s.retryKafka(ctx, p.log, "write dead letters to "+DLQPrefix+p.topic, "dlq", func() error {
		return p.s.dlq.WriteMessages(ctx, msgs...)
	})
	if err != nil {
		return err
	}
	p.s.stats.DLQ.Add(int64(len(msgs)))
	p.m.dlq.Add(float64(len(msgs)))
	return nil
}

// commit commits the offset after the batch, retrying what the broker may
// answer later until the generation or the shutdown timeout ends.
func (p *partition) commit(b *batch) error {
	err := p.s.retryKafka(p.flushCtx, p.log, fmt.Sprintf("commit %s/%d at %d", p.topic, p.id, b.next), "commit", func() error {
		return p.commits.commit(p.topic, p.id, b.next)
	})
	if err == nil {
		p.committed.Store(b.next)
	}
	return err
}

// dropAborted removes from the batch the records of aborted transactions,
// where the batch asks for the check (txn.go).
func (p *partition) dropAborted(ctx context.Context, b *batch) error {
	if !b.checkAborted || len(b.recs)+len(b.dead) == 0 {
		return nil
	}
	var aborted map[int64]bool
	err := p.s.retryKafka(ctx, p.log, fmt.Sprintf("look up aborted transactions in %s/%d", p.topic, p.id), "fetch", func() (err error) {
		var txn bool
		aborted, txn, err = abortedOffsets(ctx, p.s.tr, kafka.TCP(p.s.opts.Brokers...), p.topic, p.id, b.first, b.next, b.bytes)
		if txn {
			p.transactional.Store(true)
		}
		return err
	})
	if err != nil {
		return err
	}
	if n := b.drop(aborted); n > 0 {
		p.s.stats.Aborted.Add(int64(n))
		p.m.aborted.Add(float64(n))
		p.log.Info("dropped the records of aborted transactions", "messages", n, "from", b.first, "to", b.next-1)
	}
	return nil
}

// unheld drops from each date's records those that bronze files seen by an
// earlier batch of this assignment already hold (bronze.Created.Through).
func (p *partition) unheld(files []dateGroup) []dateGroup {
	out := files[:0]
	for _, f := range files {
		through, ok := p.held[f.date]
		if ok {
			i := bronze.After(f.recs, through)
			p.m.held.Add(float64(i))
			f.recs = f.recs[i:]
		}
		if len(f.recs) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// count adds what the batch's Creates did to the stats and metrics, and
// remembers the existing files they found; it returns the records written.
func (p *partition) count(files []dateGroup, created []bronze.Created) int {
	written := 0
	for i, c := range created {
		written += c.Written
		p.s.stats.Files.Add(int64(c.Files))
		p.m.files.Add(float64(c.Files))
		p.m.held.Add(float64(c.Held))
		p.m.taken.Add(float64(c.Taken))
		if c.Through >= 0 {
			if p.held == nil {
				p.held = map[medtype.Date]int64{}
			}
			p.held[files[i].date] = max(p.held[files[i].date], c.Through)
		}
	}
	p.s.stats.Written.Add(int64(written))
	p.m.written.Add(float64(written))
	return written
}

// retry runs fn with exponential backoff (100 ms up to 10 s) until it
// succeeds, fails with a permanentError, or ctx ends; meanwhile /healthz
// reports the error.
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
		var perm permanentError
		if errors.As(err, &perm) {
			return fmt.Errorf("sink: %s: %w", what, perm.error)
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
