package extract

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/meta"
)

// Snapshot reads the whole of From on every run, in one consistent
// snapshot (a read-only REPEATABLE READ transaction), and sets each row's
// Field, the domain's timestamp field, to the time of the run, so that a
// snapshot domain is partitioned by extract date (as the reference
// restaurants domain, whose silver keeps each day's last snapshot).
type Snapshot struct {
	From  string
	Mask  map[string]string
	Batch int
	Field string
}

// Run writes every row of one snapshot to t's bronze, then records the
// snapshot's time as the extract's position. A crash before that takes the
// snapshot again next time; silver keeps the last one of each day.
func (x Snapshot) Run(ctx context.Context, conn *pgx.Conn, store meta.Store, t Target, afterWrite func()) (Result, error) {
	res, err := x.run(ctx, conn, store, t, afterWrite)
	return res, recordFailure(ctx, store, t, "snapshot", err)
}

func (x Snapshot) run(ctx context.Context, conn *pgx.Conn, store meta.Store, t Target, afterWrite func()) (Result, error) {
	var res Result
	from, pos, err := storedPosition(ctx, store, t)
	if err != nil {
		return res, err
	}
	rel := relation{x.From, x.Mask}
	names, _, err := rel.columns(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("snapshot extract of %s: %w", rel.name(), err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return res, fmt.Errorf("snapshot extract of %s: %w", rel.name(), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	at := t.now().UTC()
	rows, err := tx.Query(ctx, "SELECT to_jsonb(t) || jsonb_build_object($1::text, $2::timestamptz) FROM "+rel.masked(names)+" t", x.Field, at)
	if err != nil {
		return res, fmt.Errorf("snapshot extract of %s: %w", rel.name(), err)
	}
	batch := x.Batch
	if batch <= 0 {
		batch = 10_000
	}
	next := Position{Watermark: at.Format(time.RFC3339Nano), NextOffset: pos.NextOffset}
	headers := map[string]string{"source": t.Source, "extract": t.Extract, "snapshot": next.Watermark}
	var buf [][]byte
	flush := func() error {
		w, err := t.Write(ctx, buf, nextBase(next.NextOffset, t.now()), headers)
		if err != nil {
			return err
		}
		next.NextOffset = w.NextOffset
		res.Batches++
		res.Rows += len(buf)
		res.Files += w.Files
		res.DeadLetters += w.DeadLetters
		buf = nil
		return nil
	}
	for rows.Next() {
		var row []byte
		if err := rows.Scan(&row); err != nil {
			return res, fmt.Errorf("snapshot extract of %s: %w", rel.name(), err)
		}
		if buf = append(buf, row); len(buf) == batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("snapshot extract of %s: %w", rel.name(), err)
	}
	if len(buf) > 0 {
		if err := flush(); err != nil {
			return res, err
		}
	}
	if afterWrite != nil {
		afterWrite()
	}
	state := meta.ExtractState{Source: t.Source, Extract: t.Extract, Mode: "snapshot", Position: next.String(), Rows: int64(res.Rows)}
	if err := store.AdvanceExtract(ctx, state, from, t.now()); err != nil {
		return res, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, err)
	}
	res.Position = next
	return res, nil
}
