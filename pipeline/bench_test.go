package pipeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/silver"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// The engine benchmark: one events partition of MEDALLION_BENCH_EVENTS
// events (default 860,000, the daily volume of the platform Medallion
// replaces; use 5000000 for the overhead comparison) with 2% duplicates,
// processed silver plus gold. BenchmarkEngine goes through the whole
// engine (meta store, leases, Iceberg commits); BenchmarkDirectDuckDB runs
// the same SQL on the same bronze files in a bare DuckDB and writes Parquet.
// Run each in its own process so peak RSS is its own:
//
//	make bench   (see BENCHMARKS.md)

func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("MEDALLION_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 860_000
}

var benchDay = medtype.MustDate("2024-01-15")

// benchBronze returns a folder holding the generated bronze partition,
// generating it on first use (cached across runs by size).
func benchBronze(b *testing.B) (string, []config.Domain) {
	b.Helper()
	cfgs, err := config.BuiltinDomains()
	if err != nil {
		b.Fatal(err)
	}
	var events []config.Domain
	for _, d := range cfgs {
		if d.Name == "events" {
			events = append(events, d)
		}
	}
	n := benchEvents()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("medallion-bench-events-%d", n))
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return dir, events
	}
	os.RemoveAll(dir)
	bucket, err := filesystem.New(filesystem.Config{Root: dir})
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := generate.Generate(generate.Options{Seed: 42, Start: benchDay, Days: 1, EventsPerDay: n, Duplicates: 0.02, Domains: []string{"events"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := generate.WriteBronze(context.Background(), bucket, events, msgs, false, 250_000, time.Now()); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir, events
}

func BenchmarkGenerateBronze(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchBronze(b)
	}
}

func peakRSS() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB -> MiB
}

func bronzeRows(b *testing.B, dir string) int64 {
	b.Helper()
	bucket, _ := filesystem.New(filesystem.Config{Root: dir})
	objs, err := storage.ListAll(context.Background(), bucket, "bronze/")
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, o := range objs {
		st, err := bucket.Stat(context.Background(), o.Key)
		if err != nil {
			b.Fatal(err)
		}
		c, _ := strconv.ParseInt(st.Metadata["record-count"], 10, 64)
		n += c
	}
	return n
}

func BenchmarkEngine(b *testing.B) {
	dir, events := benchBronze(b)
	rows := bronzeRows(b, dir)
	ctx := context.Background()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.RemoveAll(filepath.Join(dir, "warehouse"))
		work := b.TempDir()
		bucket, _ := filesystem.New(filesystem.Config{Root: dir})
		store, err := meta.Open(ctx, "sqlite://"+filepath.Join(work, "medallion.db"))
		if err != nil {
			b.Fatal(err)
		}
		l, err := lake.Open(ctx, store, bucket, config.S3{})
		if err != nil {
			b.Fatal(err)
		}
		db, err := duck.Open(config.DuckDB{SpillDir: filepath.Join(work, "spill")})
		if err != nil {
			b.Fatal(err)
		}
		doms, err := domains.Default.BindAll(events)
		if err != nil {
			b.Fatal(err)
		}
		cfg := config.Defaults()
		cfg.Domains = events
		deps := pipeline.Deps{Config: &cfg, Store: store, Bucket: bucket, Lake: l, Duck: db, Domains: doms, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		b.StartTimer()
		start := time.Now()
		sum, err := pipeline.Run(ctx, deps, pipeline.Options{})
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil || !sum.Healthy() || sum.Domains[0].Done != 1 {
			b.Fatalf("engine run: %v %+v %v", err, sum.Domains, sum.Failures)
		}
		db.Close()
		store.Close()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/partition")
	b.ReportMetric(peakRSS(), "peakRSS-MiB")
}

// BenchmarkDirectDuckDB runs the engine's SQL for the partition straight in
// DuckDB: the domain's parse.sql, the same dedup and record_hash, silver
// and every gold SELECT, each result written to Parquet. No meta store, no
// leases, no Iceberg, no MERGE against existing rows.
func BenchmarkDirectDuckDB(b *testing.B) {
	dir, events := benchBronze(b)
	rows := bronzeRows(b, dir)
	ctx := context.Background()
	doms, err := domains.Default.BindAll(events)
	if err != nil {
		b.Fatal(err)
	}
	d := doms[0]
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		work := b.TempDir()
		db, err := duck.Open(config.DuckDB{SpillDir: filepath.Join(work, "spill")})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		bucket, _ := filesystem.New(filesystem.Config{Root: dir})
		objs, _ := storage.ListAll(ctx, bucket, "bronze/")
		var paths []string
		for _, o := range objs {
			paths = append(paths, filepath.Join(dir, o.Key))
		}
		b.StartTimer()
		start := time.Now()
		runDirect(b, ctx, conn, d, paths, dir, work)
		elapsed += time.Since(start)
		b.StopTimer()
		conn.Close()
		db.Close()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/partition")
	b.ReportMetric(peakRSS(), "peakRSS-MiB")
}

func runDirect(b *testing.B, ctx context.Context, conn *sql.Conn, d domains.Domain, paths []string, root, out string) {
	exec := func(q string) {
		start := time.Now()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q[:min(len(q), 200)], err)
		}
		if os.Getenv("MEDALLION_BENCH_TRACE") != "" {
			fmt.Fprintf(os.Stderr, "%8s  %s\n", time.Since(start).Round(time.Millisecond), strings.Join(strings.Fields(q[:min(len(q), 90)]), " "))
		}
	}
	if err := silver.Prepare(ctx, conn, benchDay); err != nil {
		b.Fatal(err)
	}
	exec(fmt.Sprintf("CREATE TEMP VIEW bronze AS SELECT * EXCLUDE (filename), substr(filename, %d) AS _source_file FROM %s", len(root)+2, duck.ReadParquet(paths, true)))
	exec("CREATE TEMP TABLE parsed AS SELECT * REPLACE (CASE WHEN _reason IS NOT NULL THEN payload END AS payload) FROM (" + d.Parse + "\n)")
	exec("COPY (SELECT * EXCLUDE (_reason) FROM parsed WHERE _reason IS NOT NULL) TO '" + filepath.Join(out, "quarantine.parquet") + "' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")
	exec(`CREATE TEMP VIEW deduped AS SELECT * EXCLUDE (_reason, payload) FROM parsed WHERE _reason IS NULL
		QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _kafka_ts DESC, _partition DESC, _offset DESC) = 1`)
	sel, err := silver.HashedSelect(ctx, conn, d.Silver[0].SQL, d.PartitionKey)
	if err != nil {
		b.Fatal(err)
	}
	exec("CREATE TEMP TABLE silver_events AS " + sel)
	exec("COPY silver_events TO '" + filepath.Join(out, "silver.parquet") + "' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")
	for _, g := range d.Gold {
		exec("COPY (" + g.SQL + ") TO '" + filepath.Join(out, g.Table+".parquet") + "' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")
	}

}
