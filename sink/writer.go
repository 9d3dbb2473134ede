package sink

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/medallionlake/medallion/bronze"
)

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
