package sink_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestPoisonMessagesNeverStall: non-JSON messages of 1.1 MB, 5 MB and 20 MB
// on a topic that accepts them, whose DLQ topic accepts Kafka's default
// 1 MiB. Each goes to the DLQ truncated to fit, with headers that find the
// original and say what was cut, and the partition goes on to its end.
func TestPoisonMessagesNeverStall(t *testing.T) {
	c := kcluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(32 << 20)}))
	brokers := c.ListenAddrs()
	ctx := context.Background()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: "dlq-raw-events", NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "1048588"}},
	}}})
	must(t, err)
	must(t, res.Errors["dlq-raw-events"])

	msgs := eventMessages(t, 600)
	produce(t, brokers, msgs)
	sizes := []int{1_100_000, 5_000_000, 20_000_000}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "raw-events", Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 1 }),
		BatchBytes: 32 << 20, BatchSize: 1, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	for i, n := range sizes {
		poison := bytes.Repeat([]byte{'A' + byte(i)}, n) // not JSON
		must(t, w.WriteMessages(ctx, kafka.Message{Key: []byte(fmt.Sprintf("poison-%d", i)), Value: poison,
			Headers: []kafka.Header{{Key: "trace", Value: []byte("t-" + strconv.Itoa(i))}}}))
	}

	b := localBronze(t)
	runToEnd(t, options(brokers, b, domainsFor(t, "events")))
	if n := len(bronzeRows(t, b)); n != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", n, len(msgs))
	}
	ends := endsOf(msgs, "raw-events")
	ends[1] += int64(len(sizes))
	if got := committed(t, brokers, "raw-events"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want %v", got, ends)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "dlq-raw-events", Partition: 0, MaxWait: time.Second, MaxBytes: 4 << 20})
	defer r.Close()
	for i, n := range sizes {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := r.ReadMessage(mctx)
		cancel()
		must(t, err)
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		want := map[string]string{"trace": "t-" + strconv.Itoa(i), "source_topic": "raw-events", "source_partition": "1",
			"source_offset": strconv.FormatInt(ends[1]-int64(len(sizes)-i), 10), "original_size": strconv.Itoa(n), "truncated": "value"}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("dead letter %d: header %s = %q, want %q (all but error: %v)", i, k, h[k], v, h)
			}
		}
		if h["error"] == "" || string(m.Key) != fmt.Sprintf("poison-%d", i) {
			t.Errorf("dead letter %d: key %q, error %q", i, m.Key, h["error"])
		}
		if len(m.Value) < 1_000_000 || len(m.Value) >= 1048588 || !bytes.Equal(m.Value, bytes.Repeat([]byte{'A' + byte(i)}, len(m.Value))) {
			t.Errorf("dead letter %d: value of %d bytes, want a prefix of the original just under 1 MiB", i, len(m.Value))
		}
	}
}
