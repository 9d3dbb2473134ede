// Package pushmetrics pushes what a run or worker did to a Prometheus
// Pushgateway, since a cron job ends before anything could scrape it.
//
// Two kinds of groups are pushed (each replaced whole by the next push of
// the same group):
//   - {job, command, instance}: the last run's (or worker's) partitions
//     processed and failed, rows and duration, per domain;
//   - {job, domain}: medallion_last_success_timestamp_seconds, pushed only
//     by a run or worker that left the domain healthy, so a failing domain
//     keeps its last success time and an alert on its age fires.
package pushmetrics

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/medallionlake/medallion/pipeline"
)

// Push pushes sum, the summary of a run, backfill or worker that ended at
// end, to the Pushgateway at url under job.
func Push(ctx context.Context, url, job string, sum pipeline.Summary, end time.Time) error {
	instance, _ := os.Hostname()
	reg := prometheus.NewRegistry()
	labels := []string{"domain"}
	processed := gaugeVec("medallion_partitions_processed", "Partitions the last run processed (done or failed), by domain.", labels)
	failed := gaugeVec("medallion_partitions_failed", "Partitions that failed in the last run, by domain.", labels)
	unhealthy := gaugeVec("medallion_partitions_unhealthy", "FAILED and DEAD partitions in the meta store after the last run, by domain.", labels)
	rows := gaugeVec("medallion_rows_processed", "Bronze rows the last run processed, by domain.", labels)
	duration := prometheus.NewGauge(prometheus.GaugeOpts{Name: "medallion_run_duration_seconds", Help: "How long the last run took."})
	finished := prometheus.NewGauge(prometheus.GaugeOpts{Name: "medallion_run_finished_timestamp_seconds", Help: "When the last run ended."})
	reg.MustRegister(processed, failed, unhealthy, rows, duration, finished)
	for _, d := range sum.Domains {
		processed.WithLabelValues(d.Domain).Set(float64(d.Processed))
		failed.WithLabelValues(d.Domain).Set(float64(d.Failed))
		unhealthy.WithLabelValues(d.Domain).Set(float64(d.Unhealthy + d.Dead))
		rows.WithLabelValues(d.Domain).Set(float64(d.Rows))
	}
	duration.Set(sum.Duration.Seconds())
	finished.Set(float64(end.UnixMilli()) / 1000)
	err := push.New(url, job).Gatherer(reg).Grouping("command", sum.Command).Grouping("instance", instance).PushContext(ctx)
	if err != nil {
		return fmt.Errorf("push the run's metrics to %s: %w", url, err)
	}
	for _, d := range sum.Domains {
		if d.Failed > 0 || d.Dead > 0 || d.Unhealthy > 0 {
			continue
		}
		err := pushTime(ctx, push.New(url, job).Grouping("domain", d.Domain), "medallion_last_success_timestamp_seconds",
			"When a run or worker last left the domain with no FAILED or DEAD partition.", end)
		if err != nil {
			return fmt.Errorf("push the last success of %s to %s: %w", d.Domain, url, err)
		}
	}
	return nil
}

func gaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// pushTime pushes one gauge set to t, in seconds, to the group p.
func pushTime(ctx context.Context, p *push.Pusher, name, help string, t time.Time) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	g.Set(float64(t.UnixMilli()) / 1000)
	return p.Collector(g).PushContext(ctx)
}
