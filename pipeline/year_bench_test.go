package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/query"
	"github.com/medallionlake/medallion/storage"
)

// BenchmarkYear simulates a year of daily runs on small data (all four
// reference domains, MEDALLION_YEAR_EVENTS events a day, default 200):
// every twentieth day gets late data after its run (reprocessed by the
// next), every hundredth day a forced backfill of the three days before
// it, and, unless MEDALLION_YEAR_MAINTAIN=0, maintain after each run. A
// simulated day lasts as long as its work, so the retention settings are
// measured in simulated days: snapshot_retention is the wall time of the
// last seven days, orphan_age of the last one. At day 30 and at the last
// day (MEDALLION_YEAR_DAYS, default 365) it times an idle run (maintain
// included, and apart), the day's full pass and two fixed queries (two
// whole gold tables, and their first week), the median of five (see
// yearTimes), and at the end it
// reports per gold table the live files, partitions, objects in the
// table's folder, metadata bytes and the files a maintain would still
// delete. Run by make bench-year. MEDALLION_YEAR_DIR keeps the year's
// lake in that (empty) folder, for BenchmarkYearIdle.
func BenchmarkYear(b *testing.B) {
	days := envInt("MEDALLION_YEAR_DAYS", 365)
	events := envInt("MEDALLION_YEAR_EVENTS", 200)
	maintain := os.Getenv("MEDALLION_YEAR_MAINTAIN") != "0"
	for range b.N {
		dir := os.Getenv("MEDALLION_YEAR_DIR")
		if dir == "" {
			dir = b.TempDir()
		}
		e := newEnvIn(b, dir, "sqlite+local", nil, nil)
		e.cfg.Lake.MaintainAfterRun = maintain
		e.cfg.Lake.MinSnapshots = 1
		ctx := context.Background()
		start := medtype.MustDate("2024-01-01")
		var dayStarts []time.Time
		for i := range days {
			dayStarts = append(dayStarts, time.Now())
			setWindows(e.cfg, dayStarts)
			msgs, err := generate.Generate(generate.Options{Seed: uint64(i + 1), Start: start.AddDays(i), Days: 1, EventsPerDay: events, Duplicates: 0.02, Late: 0.1})
			if err != nil {
				b.Fatal(err)
			}
			e.writeB(b, msgs, false)
			if i > 0 && i%100 == 0 {
				yearRun(b, e, pipeline.Options{Command: "backfill", From: start.AddDays(i - 3), To: start.AddDays(i - 1), Reprocess: "all", Force: true})
			}
			yearRun(b, e, pipeline.Options{Command: "run"})
			if i%20 == 7 {
				e.writeB(b, msgs, true) // late data: the next run reprocesses the day
			}
			if i+1 == 30 || i+1 == days {
				tm := yearTimes(b, e)
				b.Logf("day %d: idle run %s (maintain %s of it), daily full pass %s, whole-table query %s, one-week query %s", i+1, tm.idle, tm.maintain, tm.daily, tm.query, tm.week)
				b.ReportMetric(tm.idle.Seconds()*1000, fmt.Sprintf("idle-run-day%d-ms", i+1))
				b.ReportMetric(tm.daily.Seconds()*1000, fmt.Sprintf("daily-pass-day%d-ms", i+1))
				b.ReportMetric(tm.maintain.Seconds()*1000, fmt.Sprintf("maintain-day%d-ms", i+1))
				b.ReportMetric(tm.query.Seconds()*1000, fmt.Sprintf("query-day%d-ms", i+1))
				b.ReportMetric(tm.week.Seconds()*1000, fmt.Sprintf("week-query-day%d-ms", i+1))
			}
		}
		yearReport(b, ctx, e)
	}
}

// BenchmarkYearIdle times idle runs and the fixed queries on the lake a
// BenchmarkYear kept in MEDALLION_YEAR_DIR, with windows long enough that
// nothing expires: run it with -cpuprofile to see where a year's history
// costs time.
func BenchmarkYearIdle(b *testing.B) {
	dir := os.Getenv("MEDALLION_YEAR_DIR")
	if dir == "" {
		b.Skip("MEDALLION_YEAR_DIR names no kept lake")
	}
	e := newEnvIn(b, dir, "sqlite+local", nil, nil)
	e.cfg.Lake.MaintainAfterRun = os.Getenv("MEDALLION_YEAR_MAINTAIN") != "0"
	e.cfg.Lake.MinSnapshots = 1
	e.cfg.Lake.SnapshotRetention, e.cfg.Lake.OrphanAge = config.Duration(1000*time.Hour), config.Duration(1000*time.Hour)
	for range b.N {
		tm := yearTimes(b, e)
		b.Logf("idle run %s (maintain %s of it), daily full pass %s, whole-table query %s, one-week query %s", tm.idle, tm.maintain, tm.daily, tm.query, tm.week)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// setWindows sets snapshot_retention to the wall time of the last seven
// simulated days, and orphan_age and bronze.listing.full_every to that of
// the last one.
func setWindows(cfg *config.Config, dayStarts []time.Time) {
	back := func(n int) config.Duration {
		if len(dayStarts) <= n {
			return config.Duration(time.Since(dayStarts[0]) + time.Hour)
		}
		return config.Duration(time.Since(dayStarts[len(dayStarts)-1-n]))
	}
	cfg.Lake.SnapshotRetention, cfg.Lake.OrphanAge = back(7), back(1)
	cfg.Bronze.Listing.FullEvery = back(1)
}

func (e *env) writeB(b *testing.B, msgs []generate.Message, late bool) {
	b.Helper()
	if _, err := generate.WriteBronze(context.Background(), e.deps.Bucket, e.cfg.Domains, msgs, late, 400, time.Now()); err != nil {
		b.Fatal(err)
	}
}

// yearRun is one run (or backfill) followed, as medallion run does, by
// maintain when lake.maintain_after_run is set; it returns how long the
// maintain took.
func yearRun(b *testing.B, e *env, opts pipeline.Options) time.Duration {
	b.Helper()
	ctx := context.Background()
	sum, err := pipeline.Run(ctx, e.deps, opts)
	if err != nil || !sum.Healthy() {
		b.Fatalf("%s: %v %+v", opts.Command, err, sum.Failures)
	}
	if !e.cfg.Lake.MaintainAfterRun {
		return 0
	}
	start := time.Now()
	if _, err := pipeline.Maintain(ctx, e.deps, nil, pipeline.MaintainOptions{Incremental: true}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// The fixed queries: the whole of two gold tables, and their first week.
const (
	yearQuery = "SELECT o.order_date, sum(o.orders), sum(o.gross_amount), max(f.users) FROM gold.orders_daily o JOIN gold.funnel_daily f ON f.event_date = o.order_date GROUP BY 1 ORDER BY 1"
	weekQuery = "SELECT o.order_date, sum(o.orders), sum(o.gross_amount), max(f.users) FROM gold.orders_daily o JOIN gold.funnel_daily f ON f.event_date = o.order_date " +
		"WHERE o.order_date BETWEEN DATE '2024-01-01' AND DATE '2024-01-07' GROUP BY 1 ORDER BY 1"
)

type yearTiming struct{ idle, maintain, daily, query, week time.Duration }

// yearTimes is the median of five of each: an idle run as an hourly cron
// makes it after the day's run (nothing due: no full bronze listing, no
// snapshot old enough to expire, no sweep), the day's full pass (a run
// that lists all of bronze, and a full maintain with the day's windows,
// which sweeps every table), and the two queries. The windows are frozen
// because the timings span several simulated days.
func yearTimes(b *testing.B, e *env) yearTiming {
	b.Helper()
	saved := *e.cfg
	defer func() { *e.cfg = saved }()
	never := config.Duration(1000 * time.Hour)
	e.cfg.Lake.SnapshotRetention, e.cfg.Lake.OrphanAge, e.cfg.Bronze.Listing.FullEvery = never, never, never
	var idles, maints, dailies, qs, weeks []time.Duration
	for range 5 {
		start := time.Now()
		maints = append(maints, yearRun(b, e, pipeline.Options{Command: "run"}))
		idles = append(idles, time.Since(start))
		dailies = append(dailies, dailyPass(b, e, saved.Lake))
		qs = append(qs, timeQuery(b, e, yearQuery))
		weeks = append(weeks, timeQuery(b, e, weekQuery))
	}
	median := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
	return yearTiming{median(idles), median(maints), median(dailies), median(qs), median(weeks)}
}

// dailyPass times a run that lists all of bronze and a full maintain with
// the lake settings of the day.
func dailyPass(b *testing.B, e *env, day config.Lake) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	sum, err := pipeline.Run(ctx, e.deps, pipeline.Options{Command: "run", FullListing: true})
	if err != nil || !sum.Healthy() {
		b.Fatalf("run --full-listing: %v %+v", err, sum.Failures)
	}
	if e.cfg.Lake.MaintainAfterRun {
		defer func(frozen config.Lake) { e.cfg.Lake = frozen }(e.cfg.Lake)
		e.cfg.Lake = day
		if _, err := pipeline.Maintain(ctx, e.deps, nil, pipeline.MaintainOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// timeQuery times one query as medallion query runs it: a session that
// attaches the tables it names, then the statement.
func timeQuery(b *testing.B, e *env, q string) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	s, err := query.Open(ctx, e.deps.Lake, e.deps.Duck, lake.Snapshot{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rows, err := s.Query(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// yearReport logs, per gold table, live files, partitions, objects in its
// folder, metadata bytes, and what a maintain would still delete.
func yearReport(b *testing.B, ctx context.Context, e *env) {
	b.Helper()
	tables, err := e.deps.Lake.Tables(ctx, "gold")
	if err != nil {
		b.Fatal(err)
	}
	reports, err := pipeline.Maintain(ctx, e.deps, tables, pipeline.MaintainOptions{DryRun: true})
	if err != nil {
		b.Fatal(err)
	}
	var objects, metaBytes int64
	for i, id := range tables {
		files, err := e.deps.Lake.Files(ctx, id, nil, lake.Snapshot{})
		if err != nil {
			b.Fatal(err)
		}
		objs, err := storage.ListAll(ctx, e.deps.Bucket, fmt.Sprintf("warehouse/%s/%s/", id.Namespace, id.Name))
		if err != nil {
			b.Fatal(err)
		}
		var meta int64
		for _, o := range objs {
			if strings.Contains(o.Key, "/metadata/") {
				meta += o.Size
			}
		}
		parts := len(e.rows(b, id.String(), "SELECT DISTINCT * EXCLUDE (x) FROM (SELECT 1 AS x, "+partitionOf(id)+" FROM t)"))
		var expired, orphans int
		for _, d := range reports[i].Deleted {
			if d.Why == "orphan" {
				orphans++
			} else {
				expired++
			}
		}
		b.Logf("%-26s live files %4d, partitions %4d, objects %5d, metadata %8d B, maintain would delete %d (%d orphans), snapshots %d",
			id, len(files), parts, len(objs), meta, expired+orphans, orphans, reports[i].Snapshots)
		objects += int64(len(objs))
		metaBytes += meta
	}
	b.ReportMetric(float64(objects), "gold-objects")
	b.ReportMetric(float64(metaBytes), "gold-metadata-bytes")
}

// partitionOf is a gold table's partition column, or a constant for the
// current-state tables.
func partitionOf(id lake.TableID) string {
	switch id.Name {
	case "orders_daily":
		return "order_date"
	case "signups_daily":
		return "signup_date"
	case "funnel_daily", "events_hourly", "revenue_daily":
		return "event_date"
	}
	return "0"
}
