package sink

import (
	"encoding/json"
	"slices"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
)

// batch is the messages read since the previous hand-off.
type batch struct {
	recs   []bronze.Record // routable messages, in offset order
	dates  []medtype.Date  // the partition date of each of recs
	dead   []kafka.Message
	deadAt []int64 // the offset of each of dead
	count  int
	bytes  int64
	opened time.Time
	first  int64 // the offset of the first message read
	next   int64 // the offset to commit once the batch is durable
	// checkAborted asks the writer to drop records of aborted
	// transactions first (txn.go).
	checkAborted bool
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

// recycle empties a written batch for reuse, dropping its references to
// message bytes.
func (b *batch) recycle() *batch {
	clear(b.recs)
	clear(b.dead)
	*b = batch{recs: b.recs[:0], dates: b.dates[:0], dead: b.dead[:0], deadAt: b.deadAt[:0]}
	return b
}

// drop removes the messages at the given offsets, keeping the order.
func (b *batch) drop(offsets map[int64]bool) (dropped int) {
	keep := 0
	for i, r := range b.recs {
		if !offsets[r.Offset] {
			b.recs[keep], b.dates[keep] = r, b.dates[i]
			keep++
		}
	}
	dropped = len(b.recs) - keep
	clear(b.recs[keep:])
	b.recs, b.dates = b.recs[:keep], b.dates[:keep]
	keep = 0
	for i, m := range b.dead {
		if !offsets[b.deadAt[i]] {
			b.dead[keep], b.deadAt[keep] = m, b.deadAt[i]
			keep++
		}
	}
	dropped += len(b.dead) - keep
	clear(b.dead[keep:])
	b.dead, b.deadAt = b.dead[:keep], b.deadAt[:keep]
	return dropped
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

func (p *partition) add(msg kafka.Message) {
	b := p.open
	if b.count == 0 {
		b.opened, b.first = time.Now(), msg.Offset
		p.s.open.Add(1)
	}
	b.count++ // a marker too: the batch's commit moves past its offset
	if expect := max(p.next, p.start); expect >= 0 && msg.Offset > expect {
		p.gap(expect, msg.Offset)
	}
	p.next = msg.Offset + 1
	p.m.lag.Set(float64(max(msg.HighWaterMark-msg.Offset-1, 0)))
	if txnMarker(msg) {
		p.s.stats.Markers.Add(1)
		p.m.markers.Inc()
		p.transactional.Store(true)
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
		b.dead = append(b.dead, deadLetter(p.topic, p.id, msg, err, int(p.s.opts.Sink.DLQMaxMessageBytes)))
		b.deadAt = append(b.deadAt, msg.Offset)
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

// gap records offsets the broker did not return: the records were deleted
// (retention, or DeleteRecords) before the sink read them, which kafka-go
// skips silently, or compacted away. Either way they are in no bronze
// file, so it is said loudly.
func (p *partition) gap(from, to int64) {
	p.s.stats.Skipped.Add(to - from)
	p.m.skipped.Add(float64(to - from))
	p.log.Warn("offsets missing from the partition: deleted by retention before the sink read them, or compacted; they are in no bronze file",
		"from", from, "to", to-1, "offsets", to-from)
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
