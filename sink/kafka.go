package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// connErr adds to a failure to talk to the brokers what the connection
// used, since a broker that refuses TLS or credentials often just closes
// the connection ("unexpected EOF").
func (s *Sink) connErr(err error) error {
	var kerr kafka.Error
	if errors.As(err, &kerr) || errors.Is(err, context.Canceled) {
		return err // the broker answered: the connection is not the problem
	}
	d := s.opts.Dialer
	how := "plaintext, no SASL"
	if d != nil {
		how = "plaintext"
		if d.TLS != nil {
			how = "TLS"
		}
		if d.SASLMechanism != nil {
			how += ", SASL " + d.SASLMechanism.Name()
		} else {
			how += ", no SASL"
		}
	}
	return fmt.Errorf("%w (brokers %s over %s: check kafka.brokers, kafka.tls and kafka.sasl)", err, strings.Join(s.opts.Brokers, ","), how)
}

// endOffsets captures the current end offset of every partition.
func (s *Sink) endOffsets(ctx context.Context) (map[string]map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(s.opts.Brokers...), Transport: Transport(s.opts.Dialer)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: s.topics()})
	if err != nil {
		return nil, fmt.Errorf("sink: metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("sink: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sink: end offsets: %w", err)
	}
	out := map[string]map[int]int64{}
	for topic, ps := range res.Topics {
		out[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("sink: end offset of %s/%d: %w", topic, p.Partition, p.Error)
			}
			out[topic][p.Partition] = p.LastOffset
		}
	}
	return out, nil
}

// ReaderConfig is how the sink reads one partition (the benchmark's
// ceiling reads the same way). Fetches have kafka-go's default size, 1 MB:
// 10 MB fetches cost the broker (kfake) three times the CPU per message,
// for the sink and a bare consumer alike (BENCHMARKS.md). A fetch waits up
// to a second for new messages; in --until-end mode a fifth of that, since
// the last fetch of each partition finds nothing and closing its reader
// waits for it.
func ReaderConfig(brokers []string, topic string, partition int, dialer *kafka.Dialer, untilEnd bool) kafka.ReaderConfig {
	wait := time.Second
	if untilEnd {
		wait = 200 * time.Millisecond
	}
	return kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, Dialer: dialer, MaxWait: wait, MinBytes: 1, MaxBytes: 1e6}
}
