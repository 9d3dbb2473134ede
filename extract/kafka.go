package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Kafka produces an extract's rows to its domain's first topic instead of
// writing bronze (extract --to kafka), as the reference producers do, so
// that the sink carries them. A message's key is the row's primary key
// (the domain's primary_key fields, joined by "|"), so one entity's changes
// stay in order on one partition; its headers carry the source, extract and
// position. Write returns once every broker in sync has the messages.
type Kafka struct {
	Writer *kafka.Writer
}

// NewKafka produces to brokers through tr (TLS and SASL; nil for
// plaintext).
func NewKafka(brokers []string, tr *kafka.Transport) *Kafka {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true, BatchSize: 1000}
	if tr != nil {
		w.Transport = tr
	}
	return &Kafka{Writer: w}
}

func (k *Kafka) Write(ctx context.Context, t Target, rows [][]byte, headers map[string]string) (Written, error) {
	if len(t.Domain.Topics) == 0 {
		return Written{}, fmt.Errorf("extract %s.%s --to kafka: domain %s has no topic", t.Source, t.Extract, t.Domain.Name)
	}
	var hs []kafka.Header
	for name, v := range headers {
		hs = append(hs, kafka.Header{Key: name, Value: []byte(v)})
	}
	msgs := make([]kafka.Message, len(rows))
	for i, row := range rows {
		msgs[i] = kafka.Message{Topic: t.Domain.Topics[0], Key: []byte(keyOf(row, t.Domain.PrimaryKey)), Value: row, Headers: hs}
	}
	if err := k.Writer.WriteMessages(ctx, msgs...); err != nil {
		return Written{}, fmt.Errorf("extract %s.%s --to kafka: produce to %s: %w", t.Source, t.Extract, t.Domain.Topics[0], err)
	}
	return Written{Rows: len(rows)}, nil
}

// Close flushes and closes the producer.
func (k *Kafka) Close() error { return k.Writer.Close() }

// keyOf is the row's primary key fields' values, joined by "|".
func keyOf(row []byte, fields []string) string {
	var m map[string]any
	if len(fields) == 0 || json.Unmarshal(row, &m) != nil {
		return ""
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = fmt.Sprint(m[f])
	}
	return strings.Join(parts, "|")
}
