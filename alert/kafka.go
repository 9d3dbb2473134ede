package alert

import (
	"context"
	"encoding/json"

	"github.com/segmentio/kafka-go"
)

// Topic produces each alert as JSON to a Kafka topic, keyed by its
// partition and cause, so a topic's consumers see one partition's alerts
// in order.
type Topic struct {
	w *kafka.Writer
}

// NewTopic writes to topic on brokers through tr (TLS and SASL; nil for
// plaintext). The topic is created if the brokers allow it.
func NewTopic(brokers []string, topic string, tr *kafka.Transport) *Topic {
	w := &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Topic:                  topic,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchSize:              1,
	}
	if tr != nil {
		w.Transport = tr
	}
	return &Topic{w: w}
}

func (t *Topic) Name() string { return "kafka topic " + t.w.Topic }

func (t *Topic) Send(ctx context.Context, a Alert) error {
	value, err := json.Marshal(a.message())
	if err != nil {
		return err
	}
	key := string(a.Cause)
	if !a.Key.Date.IsZero() {
		key = a.Key.String() + "/" + key
	}
	return t.w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: value})
}

// Close flushes and closes the writer.
func (t *Topic) Close() error { return t.w.Close() }
