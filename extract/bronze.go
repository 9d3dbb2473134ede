package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// DeadLetterRoot holds the rows of an extract that cannot be routed to a
// partition (no usable timestamp), in the bronze envelope with an error
// header: the extract's dead-letter topic. They do not stop the extract.
const DeadLetterRoot = "dlq"

// Target is where an extract's rows go: its domain's bronze, in the same
// envelope as the sink's messages. The envelope's topic names the source,
// pg.<source>.<extract>, and its headers the table and position.
type Target struct {
	Bucket  storage.Bucket
	Domain  config.Domain
	Source  string
	Extract string
	// Table is the table read, for the headers ("" for a query).
	Table string
	// Out, if set, receives the rows instead of bronze (extract --to kafka).
	Out Output
	// Now pins the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Output is where an extract's rows go instead of bronze. Write returns
// once they are durable there: the position moves after it.
type Output interface {
	Write(ctx context.Context, t Target, rows [][]byte, headers map[string]string) (Written, error)
}

// Topic is the envelope's topic of the target's rows.
func (t Target) Topic() string { return "pg." + t.Source + "." + t.Extract }

func (t Target) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Written says what Write did.
type Written struct {
	Files, Rows, DeadLetters int
	// NextOffset is past the last offset used.
	NextOffset int64
}

// Write stores rows (JSON objects) as bronze files of the domain, one per
// partition date, the row's timestamp field giving the date, with offsets
// from base on. A row without a usable timestamp goes to the dead-letter
// folder. Files are created, never replaced: offsets never repeat within
// an extract (see nextBase), so a crash's replay writes files of its own,
// and silver's dedup absorbs the overlap.
func (t Target) Write(ctx context.Context, rows [][]byte, base int64, headers map[string]string) (Written, error) {
	w := Written{NextOffset: base}
	if len(rows) == 0 {
		return w, nil
	}
	if t.Table != "" {
		headers["table"] = t.Table
	}
	if t.Out != nil {
		ow, err := t.Out.Write(ctx, t, rows, headers)
		ow.NextOffset = base
		return ow, err
	}
	min, err := t.Domain.TimestampBounds.MinTime()
	if err != nil {
		return w, err
	}
	ts := bronze.NewTimestamp(t.Domain.TimestampField, bronze.Bounds{Min: min, MaxFuture: t.Domain.TimestampBounds.MaxFuture})
	now := t.now().UTC()
	hdr, _ := json.Marshal(headers)
	byDate := map[medtype.Date][]bronze.Record{}
	var dead []bronze.Record
	for i, row := range rows {
		r := bronze.Record{Topic: t.Topic(), Offset: base + int64(i), KafkaTS: now, IngestedAt: now, Headers: string(hdr), Payload: string(row)}
		at, err := ts.Of(row, now)
		if err != nil {
			r.Headers = deadHeaders(headers, err)
			dead = append(dead, r)
			continue
		}
		r.EventTime = at
		d := medtype.DateOf(at)
		byDate[d] = append(byDate[d], r)
	}
	w.NextOffset = base + int64(len(rows))
	dates := make([]medtype.Date, 0, len(byDate))
	for d := range byDate {
		dates = append(dates, d)
	}
	sort.Slice(dates, func(i, j int) bool { return dates[i].Before(dates[j]) })
	var enc bronze.Encoder
	for _, d := range dates {
		recs := byDate[d]
		f := bronze.File{Domain: t.Domain.Name, PartitionKey: t.Domain.PartitionKey, Date: d, Topic: t.Topic(), StartOffset: recs[0].Offset}
		c, err := enc.Create(ctx, t.Bucket, f, recs)
		if err != nil {
			return w, fmt.Errorf("extract %s.%s: %w", t.Source, t.Extract, err)
		}
		w.Files += c.Files
		w.Rows += len(recs)
	}
	if len(dead) > 0 {
		key := fmt.Sprintf("%s/%s/%s+0+%020d.parquet", DeadLetterRoot, t.Domain.Name, t.Topic(), dead[0].Offset)
		var buf bytes.Buffer
		if err := enc.Encode(&buf, dead); err != nil {
			return w, err
		}
		if err := t.Bucket.Put(ctx, key, &buf, bronze.Metadata(dead)); err != nil {
			return w, fmt.Errorf("extract %s.%s: dead letters: %w", t.Source, t.Extract, err)
		}
		w.DeadLetters = len(dead)
	}
	return w, nil
}

func deadHeaders(headers map[string]string, cause error) string {
	h := map[string]string{"error": cause.Error()}
	for k, v := range headers {
		h[k] = v
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// nextBase is the first offset of a read: past every offset of the
// extract's last recorded read, and past the current time in
// microseconds, so that a read repeated after a crash (its offsets were
// not recorded) starts past the crashed one's first offset and its files
// never take the crashed one's names.
func nextBase(recorded int64, now time.Time) int64 {
	return max(recorded, now.UnixMicro())
}
