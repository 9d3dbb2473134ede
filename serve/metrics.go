package serve

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Query outcomes, the label of medallion_serve_queries_total.
const (
	outcomeOK       = "ok"
	outcomeError    = "error"
	outcomeBlocked  = "blocked"
	outcomeTimeout  = "timeout"
	outcomeCanceled = "canceled"
)

// metrics are the server's Prometheus series, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	refused  *prometheus.CounterVec
	queries  *prometheus.CounterVec
	running  prometheus.Gauge
	waiting  prometheus.Gauge
	duration prometheus.Histogram
}

func newMetrics(l *listener) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_serve_connections_refused_total",
			Help: "Connections refused before a session: too many, plaintext from another machine, or failed authentication."}, []string{"reason"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medallion_serve_queries_total",
			Help: "Statements run, by outcome (ok, error, blocked by the sandbox, timeout, canceled)."}, []string{"outcome"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medallion_serve_queries_running",
			Help: "Statements running now."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medallion_serve_queries_waiting",
			Help: "Statements waiting for one of serve.max_queries slots."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "medallion_serve_query_duration_seconds",
			Help: "Time from a statement's start to its last row sent, waiting for a slot included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
	}
	connections := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "medallion_serve_connections",
		Help: "Client connections open now."}, func() float64 { return float64(l.open.Load()) })
	for _, o := range []string{outcomeOK, outcomeError, outcomeBlocked, outcomeTimeout, outcomeCanceled} {
		m.queries.WithLabelValues(o) // at 0 from the start, for rate() in alerts
	}
	for _, r := range []string{"max_connections", "plaintext", "authentication"} {
		m.refused.WithLabelValues(r)
	}
	m.reg.MustRegister(connections, m.refused, m.queries, m.running, m.waiting, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics, and /healthz: 200 while the server accepts
// connections, 503 once it is shutting down.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
