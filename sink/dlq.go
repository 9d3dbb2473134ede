package sink

import (
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// DLQPrefix names a topic's dead-letter topic: dlq-<topic>.
const DLQPrefix = "dlq-"

// dlqMargin is what a dead letter leaves of sink.dlq_max_message_bytes for
// the record batch's framing, which kafka-go's size estimate leaves out.
const dlqMargin = 1 << 10

// newDLQWriter writes dead letters in batches that the DLQ topics accept:
// a batch of kafka-go's estimated size limit-dlqMargin is a record batch
// of less than limit on the wire.
func newDLQWriter(brokers []string, tr *kafka.Transport, limit int) *kafka.Writer {
	return &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           10 * time.Millisecond,
		BatchSize:              100,
		BatchBytes:             int64(limit - dlqMargin),
		Transport:              tr,
	}
}

// deadLetter is msg as a message for dlq-<topic>: its key, value and
// headers, and headers error, source_topic, source_partition and
// source_offset, which find the original. One larger than the DLQ topic
// accepts keeps what fits of its value (then key, then headers), with
// headers original_size (the value's bytes) and truncated (what was cut):
// a dead letter that cannot be written would stall its partition forever.
func deadLetter(topic string, partition int, msg kafka.Message, cause error, limit int) kafka.Message {
	ours := []kafka.Header{
		{Key: "error", Value: []byte(cause.Error())},
		{Key: "source_topic", Value: []byte(topic)},
		{Key: "source_partition", Value: []byte(strconv.Itoa(partition))},
		{Key: "source_offset", Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	}
	dl := kafka.Message{Topic: DLQPrefix + topic, Key: msg.Key, Value: msg.Value, Time: msg.Time,
		Headers: append(append(make([]kafka.Header, 0, len(msg.Headers)+6), msg.Headers...), ours...)}
	budget := limit - 2*dlqMargin // the writer's batch limit, less one message's framing
	if letterSize(dl) <= budget {
		return dl
	}
	ours = append(ours, kafka.Header{Key: "original_size", Value: []byte(strconv.Itoa(len(msg.Value)))})
	var cut []string
	fit := func(n int) int { return max(0, n) }
	dl.Headers = append(append(dl.Headers[:0], msg.Headers...), ours...)
	dl.Headers = append(dl.Headers, kafka.Header{Key: "truncated"}) // its value is set below
	dl.Value = dl.Value[:fit(min(len(dl.Value), budget-letterSize(kafka.Message{Key: dl.Key, Headers: dl.Headers})-16))]
	cut = append(cut, "value")
	if letterSize(dl) > budget {
		dl.Key = dl.Key[:fit(min(len(dl.Key), budget-letterSize(kafka.Message{Headers: dl.Headers})-16))]
		cut = append(cut, "key")
	}
	if letterSize(dl) > budget {
		dl.Headers = append(ours, kafka.Header{Key: "truncated"})
		cut = append(cut, "headers")
	}
	dl.Headers[len(dl.Headers)-1].Value = []byte(strings.Join(cut, ","))
	return dl
}

// letterSize is an upper bound of a message's size in a record batch: its
// bytes and at most 10 bytes of length prefixes per field.
func letterSize(m kafka.Message) int {
	n := 32 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
