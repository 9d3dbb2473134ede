package sink

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medallionlake/medallion/internal/httpendpoint"
)

// metrics are the sink's Prometheus series, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	consumed *prometheus.CounterVec
	written  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	files    *prometheus.CounterVec
	dlq      *prometheus.CounterVec
	markers  *prometheus.CounterVec
	// held, taken and unconfirmed count the work of replays and zombies.
	held, taken, unconfirmed *prometheus.CounterVec
	aborted, skipped         *prometheus.CounterVec
	// kafkaErrors counts broker errors by operation (join, fetch, commit,
	// dlq), each retried unless permanent.
	kafkaErrors *prometheus.CounterVec
	flush       prometheus.Histogram
	lag         *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_messages_consumed_total",
			Help: "Kafka messages read."}, []string{"topic"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_messages_written_total",
			Help: "Messages written to bronze."}, []string{"topic"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_bytes_consumed_total",
			Help: "Message key and value bytes read."}, []string{"topic"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_files_written_total",
			Help: "Bronze files written."}, []string{"topic"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_dlq_messages_total",
			Help: "Messages sent to the dead-letter topic."}, []string{"topic"}),
		markers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_transaction_markers_total",
			Help: "Transaction commit and abort markers skipped (not messages)."}, []string{"topic"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_messages_already_in_bronze_total",
			Help: "Messages not written because a bronze file written earlier (by a replay or another member) holds them."}, []string{"topic"}),
		taken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_bronze_keys_taken_total",
			Help: "Bronze writes that found their key created already, and wrote only the offsets the file there lacks."}, []string{"topic"}),
		unconfirmed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_unconfirmed_messages_total",
			Help: "Messages written to bronze by a batch whose commit came after its partition moved to another member: the new owner may write them too (silver removes such duplicates)."}, []string{"topic"}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_aborted_messages_total",
			Help: "Messages of aborted transactions, dropped before bronze."}, []string{"topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_skipped_offsets_total",
			Help: "Offsets the broker no longer had when the sink read past them (deleted by retention before the sink read them, or compacted): in no bronze file."}, []string{"topic"}),
		kafkaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_sink_kafka_errors_total",
			Help: "Errors from the brokers by operation (join, fetch, commit, dlq, offsets); each is retried unless retrying cannot fix it."}, []string{"op"}),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "medallion_sink_flush_duration_seconds",
			Help: "Time to write a batch to bronze and the DLQ and commit it.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medallion_sink_lag_messages",
			Help: "Messages behind the partition's high watermark."}, []string{"topic", "partition"}),
	}
	for _, op := range []string{"join", "fetch", "commit", "dlq", "offsets"} {
		m.kafkaErrors.WithLabelValues(op) // at 0 from the start, for rate() in alerts
	}
	m.reg.MustRegister(m.consumed, m.written, m.bytes, m.files, m.dlq, m.markers, m.held, m.taken, m.unconfirmed, m.aborted, m.skipped, m.kafkaErrors, m.flush, m.lag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// partitionMetrics caches the label lookups of one partition's hot path.
type partitionMetrics struct {
	consumed, written, bytes, files, dlq, markers prometheus.Counter
	held, taken, unconfirmed, aborted, skipped    prometheus.Counter
	lag                                           prometheus.Gauge
}

func (m *metrics) forPartition(topic string, partition int) partitionMetrics {
	return partitionMetrics{
		consumed: m.consumed.WithLabelValues(topic), written: m.written.WithLabelValues(topic),
		bytes: m.bytes.WithLabelValues(topic), files: m.files.WithLabelValues(topic), dlq: m.dlq.WithLabelValues(topic),
		markers: m.markers.WithLabelValues(topic), held: m.held.WithLabelValues(topic), taken: m.taken.WithLabelValues(topic),
		unconfirmed: m.unconfirmed.WithLabelValues(topic), aborted: m.aborted.WithLabelValues(topic),
		skipped: m.skipped.WithLabelValues(topic), lag: m.lag.WithLabelValues(topic, strconv.Itoa(partition)),
	}
}

// Handler serves /metrics and /healthz. /healthz answers 503 while a
// storage or DLQ write is failing (the sink is retrying), else 200.
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.retrying.Load() > 0 {
			msg, _ := s.lastFailure.Load().(string)
			http.Error(w, "retrying: "+msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve runs the HTTP endpoints on addr until ctx ends.
func (s *Sink) Serve(ctx context.Context, addr string) error {
	stop, err := httpendpoint.Start("sink.http_addr", addr, s.Handler())
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}
