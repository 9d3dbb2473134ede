package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage/s3"
)

// BenchmarkWorkers: partitions per minute that 1, 2 and 4 worker processes
// (DuckDB threads: 1 each) drain from one queue on PostgreSQL and
// versitygw, on a bronze of many small partitions and on one of a few
// large ones. Each count starts from a fresh meta schema and bucket
// holding the same bronze; the time runs from starting the workers until
// the last one exits (process start-up included).
//
//	make bench-workers   (see BENCHMARKS.md)
func BenchmarkWorkers(b *testing.B) {
	shapes := []struct {
		name string
		opts generate.Options
	}{
		{"small", generate.Options{Seed: 41, Start: medtype.MustDate("2024-02-01"), Days: 40, EventsPerDay: 800, Duplicates: 0.02}},
		{"large", generate.Options{Seed: 42, Start: medtype.MustDate("2024-02-01"), Days: 2, EventsPerDay: 300_000, Duplicates: 0.02}},
	}
	b.Setenv(workerLeaseEnv, "1m")
	srv := testenv.StartS3(b)
	for _, shape := range shapes {
		msgs, err := generate.Generate(shape.opts)
		if err != nil {
			b.Fatal(err)
		}
		var one float64
		for _, n := range []int{1, 2, 4} {
			b.Run(shape.name+"/workers="+itoa(n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					perMin, parts := drainWith(b, srv, msgs, n)
					if n == 1 {
						one = perMin
					}
					b.ReportMetric(perMin, "partitions/min")
					b.ReportMetric(float64(parts), "partitions")
					if one > 0 {
						b.ReportMetric(perMin/one, "x_one_worker")
					}
				}
			})
		}
	}
}

// drainWith queues msgs' partitions on a fresh deployment and times n
// worker processes draining them.
func drainWith(b *testing.B, srv *testenv.S3Server, msgs []generate.Message, n int) (float64, int) {
	b.StopTimer()
	ctx := context.Background()
	var bucketCfg s3.Config
	bucket := srv.Bucket(b, "", func(c *s3.Config) { bucketCfg = *c })
	metaURL := testenv.PostgresSchema(b)
	e := newEnvOn(b, workerConfig(bucketCfg), nil, metaURL, bucket)
	if _, err := generate.WriteBronze(ctx, bucket, e.cfg.Domains, msgs, false, 400, time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		b.Fatal(err)
	}
	sum, err := pipeline.Run(ctx, e.deps, pipeline.Options{NoProcess: true})
	if err != nil {
		b.Fatal(err)
	}
	queued := 0
	for _, d := range sum.Domains {
		queued += d.Queued
	}
	b.StartTimer()
	start := time.Now()
	workers := make([]*worker, n)
	for i := range workers {
		workers[i] = startWorker(b, metaURL, bucketCfg, false)
	}
	for _, w := range workers {
		if err := w.wait(30 * time.Minute); err != nil {
			b.Fatalf("a worker: %v\n%s", err, w.out)
		}
	}
	took := time.Since(start)
	b.StopTimer()
	parts, err := e.deps.Store.Summary(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range parts {
		if c.State != "DONE" {
			for _, w := range workers {
				b.Log(lines(w.out.String(), "level=ERROR") + lines(w.out.String(), "level=WARN") + lines(w.out.String(), "failed"))
			}
			b.Fatalf("after the workers: %d partitions %s", c.Count, c.State)
		}
	}
	b.Logf("%d workers: %d partitions in %s", n, queued, took.Round(time.Millisecond))
	return float64(queued) / took.Minutes(), queued
}
