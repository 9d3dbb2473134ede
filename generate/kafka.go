package generate

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// Produce writes the messages to Kafka in delivery order, each to the
// partition PartitionOf gives for its key among the topic's partitions, with
// its Kafka timestamp. A topic with Options.Partitions partitions receives
// exactly the offsets Offsets assigns. It returns the number written.
func Produce(ctx context.Context, w *kafka.Writer, msgs []Message) (int, error) {
	w.Balancer = kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
		return partitions[PartitionOf(m.Key, len(partitions))]
	})
	const batch = 1000
	for i := 0; i < len(msgs); i += batch {
		out := make([]kafka.Message, 0, batch)
		for _, m := range msgs[i:min(i+batch, len(msgs))] {
			out = append(out, kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time})
		}
		if err := w.WriteMessages(ctx, out...); err != nil {
			return i, fmt.Errorf("produce: %w", err)
		}
	}
	return len(msgs), nil
}
