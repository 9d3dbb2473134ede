package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
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

// endOffsets captures the current end offset of every partition, retrying
// what the brokers may answer later.
func (s *Sink) endOffsets(ctx context.Context) (ends map[string]map[int]int64, err error) {
	wait := topicWait{limit: s.opts.Sink.TopicWait}
	err = s.retryKafka(ctx, s.opts.Log, "read end offsets", "offsets", func() error {
		ends, err = s.listEnds(ctx)
		if werr := wait.check(err, s.topics()); werr != nil {
			return permanentError{werr}
		}
		return err
	})
	return ends, err
}

func (s *Sink) listEnds(ctx context.Context) (map[string]map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(s.opts.Brokers...), Transport: s.tr}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: s.topics()})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	out := map[string]map[int]int64{}
	for topic, ps := range res.Topics {
		out[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
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
// waits for it. It reads read_committed, so an open transaction's records
// are read only once it ended (txn.go drops the aborted ones).
func ReaderConfig(brokers []string, topic string, partition int, dialer *kafka.Dialer, untilEnd bool) kafka.ReaderConfig {
	wait := time.Second
	if untilEnd {
		wait = 200 * time.Millisecond
	}
	return kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, Dialer: dialer, MaxWait: wait, MinBytes: 1, MaxBytes: 1e6,
		IsolationLevel: kafka.ReadCommitted}
}

// permanent reports whether retrying cannot fix a Kafka error: the brokers
// refused the credentials or the access, a name or setting is invalid, a
// message is larger than the broker accepts, or TLS failed. Every other
// error (coordinator moves and loads, rebalances, leadership changes,
// unknown members, timeouts, dropped connections) is retried with backoff
// for as long as it lasts, except an unknown topic (sink.topic_wait).
func permanent(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
			kafka.BrokerAuthorizationFailed, kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism,
			kafka.IllegalSASLState, kafka.InvalidTopic, kafka.InvalidGroupId, kafka.InvalidSessionTimeout,
			kafka.MessageSizeTooLarge, kafka.RecordListTooLarge:
			return true
		}
		return false
	}
	var (
		tooLarge kafka.MessageTooLargeError
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
	)
	return errors.As(err, &tooLarge) || errors.As(err, &verify) || errors.As(err, &header)
}

// permanentError stops retry at once: retrying cannot fix it.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// retryKafka is retry for a Kafka operation: each error counts in
// medallion_sink_kafka_errors_total under op, and one that retrying cannot
// fix (permanent) ends it at once.
func (s *Sink) retryKafka(ctx context.Context, log *slog.Logger, what, op string, fn func() error) error {
	return s.retry(ctx, log, what, func() error {
		err := fn()
		if err != nil {
			s.metrics.kafkaErrors.WithLabelValues(op).Inc()
		}
		if err != nil && permanent(err) {
			return permanentError{err}
		}
		return err
	})
}

// topicWait tracks how long the brokers have not known a topic or, before
// the sink first reached them, not answered.
type topicWait struct {
	limit     time.Duration
	since     time.Time
	connected bool
}

// check returns an error once err has reported an unknown topic, or an
// unreachable broker before any success, for longer than the limit; a nil
// err is a success and resets the wait.
func (w *topicWait) check(err error, topics []string) error {
	var kerr kafka.Error
	unreachable := err != nil && !w.connected && !errors.As(err, &kerr) && !errors.Is(err, context.Canceled)
	if err == nil {
		w.connected = true
	}
	if !unreachable && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		w.since = time.Time{}
		return nil
	}
	if w.since.IsZero() {
		w.since = time.Now()
	}
	if time.Since(w.since) < w.limit {
		return nil
	}
	if unreachable {
		return fmt.Errorf("no answer from the brokers for %s (sink.topic_wait): %w", w.limit, err)
	}
	return fmt.Errorf("the brokers do not know topic %s after %s (sink.topic_wait): create it, or fix the domain's topics: %w",
		strings.Join(topics, " or "), w.limit, err)
}
