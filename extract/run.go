package extract

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/meta"
)

// Result counts what a run of an extract did.
type Result struct {
	Batches, Rows, Files, DeadLetters int
	Position                          Position
}

// Run extracts x into t until no row is left: per batch, the bronze files
// first, then the position (meta.Store.AdvanceExtract), so the position
// never passes a row that is not durable. A crash between the two reads
// the batch again next time: at-least-once, and silver's dedup absorbs the
// overlap. A failure is recorded (FailExtract) and leaves the position.
// afterWrite, if set, runs between the two (tests).
func (x Incremental) Run(ctx context.Context, conn *pgx.Conn, store meta.Store, t Target, afterWrite func()) (Result, error) {
	res, err := x.run(ctx, conn, store, t, afterWrite)
	return res, recordFailure(ctx, store, t, "incremental", err)
}

// recordFailure records a failed run of t's extract (its position stays)
// and returns err, with the recording's own error if it failed too.
func recordFailure(ctx context.Context, store meta.Store, t Target, mode string, err error) error {
	if err == nil {
		return nil
	}
	if ferr := store.FailExtract(context.WithoutCancel(ctx), t.Source, t.Extract, mode, err.Error(), t.now()); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

func (x Incremental) run(ctx context.Context, conn *pgx.Conn, store meta.Store, t Target, afterWrite func()) (Result, error) {
	var res Result
	r, err := x.reader(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, err)
	}
	from, pos, err := storedPosition(ctx, store, t)
	if err != nil {
		return res, err
	}
	if err := r.sameTypes(pos); err != nil {
		return res, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, err)
	}
	reads, stop := r.readAhead(ctx, conn, pos)
	defer stop()
	for got := range reads {
		b := got.batch
		if got.err != nil {
			return res, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, got.err)
		}
		next := b.Next
		next.NextOffset, next.Types = pos.NextOffset, r.orderTypes()
		if len(b.Rows) > 0 {
			w, err := t.Write(ctx, b.Rows, nextBase(pos.NextOffset, t.now()), map[string]string{
				"source": t.Source, "extract": t.Extract, "watermark": b.Next.Watermark})
			if err != nil {
				return res, err
			}
			next.NextOffset = w.NextOffset
			res.Files += w.Files
			res.DeadLetters += w.DeadLetters
			if afterWrite != nil {
				afterWrite()
			}
		}
		state := meta.ExtractState{Source: t.Source, Extract: t.Extract, Mode: "incremental", Position: next.String(), Rows: int64(len(b.Rows))}
		if err := store.AdvanceExtract(ctx, state, from, t.now()); err != nil {
			return res, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, err)
		}
		res.Position = next
		if len(b.Rows) == 0 {
			break
		}
		res.Batches++
		res.Rows += len(b.Rows)
		from, pos = state.Position, next
	}
	return res, nil
}

// readResult is one batch read ahead, or why it could not be.
type readResult struct {
	batch Batch
	err   error
}

// readAhead reads the batches past pos one after another on conn, each
// while the one before is being written (the server's query and the
// bronze encoding overlap on two cores); the channel ends after an empty
// batch or an error. Only positions move the extract: a batch read ahead
// of a failed write is dropped. stop ends the reading and waits until conn
// is free again, without cancelling a query (which would close conn for
// the source's other extracts).
func (r reader) readAhead(ctx context.Context, conn *pgx.Conn, pos Position) (<-chan readResult, func()) {
	out, done := make(chan readResult, 1), make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := r.read(ctx, conn, pos)
			select {
			case out <- readResult{b, err}:
			case <-done:
				return
			}
			if err != nil || len(b.Rows) == 0 {
				return
			}
			pos = b.Next
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() { close(done) })
		for range out { // until the reader has let conn go
		}
	}
}

// storedPosition is the stored position of t's incremental or snapshot
// extract, as stored (for the compare-and-set) and parsed.
func storedPosition(ctx context.Context, store meta.Store, t Target) (string, Position, error) {
	from, err := position(ctx, store, t)
	if err != nil {
		return "", Position{}, err
	}
	pos, err := ParsePosition(from)
	return from, pos, err
}

// position is the stored position of t's extract ("" before its first).
func position(ctx context.Context, store meta.Store, t Target) (string, error) {
	st, err := store.Extract(ctx, t.Source, t.Extract)
	if errors.Is(err, meta.ErrNotFound) {
		return "", nil
	}
	return st.Position, err
}
