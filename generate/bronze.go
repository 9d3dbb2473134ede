package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// BronzeStats counts what WriteBronze wrote.
type BronzeStats struct {
	Files      int
	Records    int
	Unroutable int // would have gone to the dead-letter topic
}

// Offsets assigns Kafka offsets: per topic and partition, in delivery order.
func Offsets(msgs []Message) []int64 {
	next := map[string]int64{}
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		k := fmt.Sprintf("%s/%d", m.Topic, m.Partition)
		out[i] = next[k]
		next[k]++
	}
	return out
}

// WriteBronze routes messages to partitions the way the sink does (the
// domain's timestamp field and bounds) and writes them as bronze files of at
// most fileRecords messages each, named by their first offset. With late
// false it writes the on-time messages, with late true the late ones, so a
// test or demo can land late data after a first run. Unroutable messages are
// counted, not written.
func WriteBronze(ctx context.Context, b storage.Bucket, doms []config.Domain, msgs []Message, late bool, fileRecords int, now time.Time) (BronzeStats, error) {
	if fileRecords <= 0 {
		fileRecords = 1000
	}
	byTopic := map[string]config.Domain{}
	stamps := map[string]bronze.Timestamp{}
	for _, d := range doms {
		min, err := d.TimestampBounds.MinTime()
		if err != nil {
			return BronzeStats{}, fmt.Errorf("generate: domain %s: %w", d.Name, err)
		}
		for _, t := range d.Topics {
			byTopic[t] = d
			stamps[t] = bronze.NewTimestamp(d.TimestampField, bronze.Bounds{Min: min, MaxFuture: d.TimestampBounds.MaxFuture})
		}
	}
	offsets := Offsets(msgs)
	type bufKey struct {
		topic     string
		partition int32
		date      medtype.Date
	}
	bufs := map[bufKey][]bronze.Record{}
	var order []bufKey
	var st BronzeStats
	flush := func(k bufKey) error {
		recs := bufs[k]
		if len(recs) == 0 {
			return nil
		}
		d := byTopic[k.topic]
		f := bronze.File{Domain: d.Name, PartitionKey: d.PartitionKey, Date: k.date, Topic: k.topic, Partition: k.partition, StartOffset: recs[0].Offset}
		if err := bronze.Put(ctx, b, f, recs); err != nil {
			return err
		}
		st.Files++
		st.Records += len(recs)
		bufs[k] = nil
		return nil
	}
	for i, m := range msgs {
		if m.Late != late {
			continue
		}
		ts, ok := stamps[m.Topic]
		if !ok {
			return st, fmt.Errorf("generate: no configured domain consumes topic %s", m.Topic)
		}
		et, err := ts.Of(m.Value, now)
		if err != nil {
			st.Unroutable++
			continue
		}
		k := bufKey{m.Topic, m.Partition, medtype.DateOf(et)}
		if _, seen := bufs[k]; !seen {
			order = append(order, k)
		}
		headers, _ := json.Marshal(map[string]string{"generator": "medallion"})
		bufs[k] = append(bufs[k], bronze.Record{
			Topic: m.Topic, Partition: m.Partition, Offset: offsets[i], Key: m.Key, KafkaTS: m.Time,
			IngestedAt: m.Time.Add(time.Second), Headers: string(headers), Payload: string(m.Value), EventTime: et,
		})
		if len(bufs[k]) >= fileRecords {
			if err := flush(k); err != nil {
				return st, err
			}
		}
	}
	for _, k := range order {
		if err := flush(k); err != nil {
			return st, err
		}
	}
	return st, nil
}
