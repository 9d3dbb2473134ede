package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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
// versitygw, on a bronze of many small partitions (four domains, 40 days)
// and on one of a few large ones (six days of 200,000 events, partitions
// of one size). Each count starts from a fresh meta schema and bucket
// holding the same bronze; the time runs from starting the workers until
// the last one exits (process start-up included). The counts alternate
// for MEDALLION_WORKERS_BENCH_ROUNDS rounds (default 2) and each keeps its
// best, since this machine's speed drifts.
//
//	make bench-workers   (see BENCHMARKS.md)
func BenchmarkWorkers(b *testing.B) {
	b.Setenv(workerLeaseEnv, "1m")
	rounds := 2
	if n, err := strconv.Atoi(os.Getenv("MEDALLION_WORKERS_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	shapes := []struct {
		name string
		opts generate.Options
	}{
		{"small", generate.Options{Seed: 41, Start: medtype.MustDate("2024-02-01"), Days: 40, EventsPerDay: 800, Duplicates: 0.02}},
		{"large", generate.Options{Seed: 42, Start: medtype.MustDate("2024-02-01"), Days: 6, EventsPerDay: 200_000, Duplicates: 0.02,
			Domains: []string{"events"}}},
	}
	ceiling := spinCeiling(b)
	srv := testenv.StartS3(b)
	for _, shape := range shapes {
		msgs, err := generate.Generate(shape.opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(shape.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				best := map[int]float64{}
				for round := 1; round <= rounds; round++ {
					for _, n := range []int{1, 2, 4} {
						perMin, parts, cpu := drainWith(b, srv, msgs, n)
						b.Logf("round %d, %d workers: %.1f partitions/min (%d partitions); cores %.0f%% busy, %.0f%% by the workers",
							round, n, perMin, parts, cpu.machine, cpu.workers)
						best[n] = max(best[n], perMin)
					}
				}
				for _, n := range []int{1, 2, 4} {
					b.ReportMetric(best[n], fmt.Sprintf("partitions/min_%dw", n))
					b.ReportMetric(best[n]/best[1], fmt.Sprintf("x_%dw", n))
				}
				b.ReportMetric(ceiling, "x_cpu_ceiling")
			}
		})
	}
}

// spinChildEnv makes a child process of TestWorkerProcesses spin (see
// spinCeiling).
const spinChildEnv = "MEDALLION_WORKER_SPIN"

// spin is a fixed amount of pure CPU work, single-threaded.
func spin() {
	x := uint64(1)
	for i := 0; i < 2_000_000_000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	if x == 0 {
		fmt.Println(x)
	}
}

// spinCeiling reports how much more two processes of pure CPU work do
// than one on this machine: the most two worker processes could do. (On
// the reference machine, a VM with 2 cores, it is about 1.3, not 2.)
func spinCeiling(b *testing.B) float64 {
	run := func(n int) time.Duration {
		start := time.Now()
		cmds := make([]*exec.Cmd, n)
		for i := range cmds {
			cmds[i] = exec.Command(os.Args[0], "-test.run=^TestWorkerProcesses$")
			cmds[i].Env = append(os.Environ(), spinChildEnv+"=1")
			if err := cmds[i].Start(); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	one, two := run(1), run(2)
	ceiling := 2 * one.Seconds() / two.Seconds()
	b.Logf("pure CPU work: one process %s, two at once %s: two do %.2fx the work of one", one.Round(time.Millisecond), two.Round(time.Millisecond), ceiling)
	return ceiling
}

// cpuUse is how busy the machine's cores were while workers drained the
// queue: all of it, and the workers' own share (the rest is PostgreSQL,
// versitygw and the benchmark), in percent of every core.
type cpuUse struct{ machine, workers float64 }

// busy reads the machine's busy and total CPU time from /proc/stat, in
// clock ticks.
func busy(b *testing.B) (busy, total float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, f := range strings.Fields(line)[1:9] { // user … steal; guest time is in user already
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// drainWith queues msgs' partitions on a fresh deployment and times n
// worker processes draining them.
func drainWith(b *testing.B, srv *testenv.S3Server, msgs []generate.Message, n int) (float64, int, cpuUse) {
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
	busy0, total0 := busy(b)
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
	busy1, total1 := busy(b)
	var use cpuUse
	use.machine = 100 * (busy1 - busy0) / (total1 - total0)
	for _, w := range workers {
		st := w.cmd.ProcessState
		use.workers += 100 * (st.UserTime() + st.SystemTime()).Seconds() / (took.Seconds() * float64(runtime.NumCPU()))
	}
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
	return float64(queued) / took.Minutes(), queued, use
}
