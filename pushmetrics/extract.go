package pushmetrics

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// Extract is one extract's run, as medallion extract pushes it.
type Extract struct {
	Source, Extract, Mode string
	Rows                  int64
	Failed                bool
	// RetainedWAL is the WAL a cdc slot keeps, in bytes (-1: not cdc, or
	// not known), and RetainedWALLimit its max_retained_wal.
	RetainedWAL, RetainedWALLimit int64
}

// PushExtracts pushes the extracts' last runs (group {job, command
// "extract", instance}) and, for each that succeeded,
// medallion_extract_last_success_timestamp_seconds (group {job, source,
// extract}), which a failing extract leaves as it was.
func PushExtracts(ctx context.Context, url, job string, runs []Extract, end time.Time) error {
	instance, _ := os.Hostname()
	reg := prometheus.NewRegistry()
	labels := []string{"source", "extract", "mode"}
	rows := gaugeVec("medallion_extract_rows", "Rows the last extract run wrote.", labels)
	failed := gaugeVec("medallion_extract_failed", "1 if the last extract run failed (its position did not move).", labels)
	wal := gaugeVec("medallion_extract_retained_wal_bytes", "WAL the source keeps for a cdc extract's replication slot.", labels)
	over := gaugeVec("medallion_extract_retained_wal_over_limit", "1 if a cdc slot keeps more WAL than its max_retained_wal.", labels)
	reg.MustRegister(rows, failed, wal, over)
	for _, r := range runs {
		l := []string{r.Source, r.Extract, r.Mode}
		rows.WithLabelValues(l...).Set(float64(r.Rows))
		failed.WithLabelValues(l...).Set(boolValue(r.Failed))
		if r.RetainedWAL >= 0 {
			wal.WithLabelValues(l...).Set(float64(r.RetainedWAL))
			over.WithLabelValues(l...).Set(boolValue(r.RetainedWALLimit > 0 && r.RetainedWAL > r.RetainedWALLimit))
		}
	}
	err := push.New(url, job).Gatherer(reg).Grouping("command", "extract").Grouping("instance", instance).PushContext(ctx)
	if err != nil {
		return fmt.Errorf("push the extracts' metrics to %s: %w", url, err)
	}
	for _, r := range runs {
		if r.Failed {
			continue
		}
		err := pushTime(ctx, push.New(url, job).Grouping("source", r.Source).Grouping("extract", r.Extract),
			"medallion_extract_last_success_timestamp_seconds", "When the extract last ran without error.", end)
		if err != nil {
			return fmt.Errorf("push the last success of extract %s.%s to %s: %w", r.Source, r.Extract, url, err)
		}
	}
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
