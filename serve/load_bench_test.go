package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/internal/testenv"
)

// loadMix is the benchmark's mix of gold queries: whole-table
// aggregates, date-filtered ones (pruned to their partitions), a join,
// and the column listing BI tools run.
var loadMix = []string{
	"SELECT status, sum(orders), sum(gross_amount) FROM gold.orders_daily GROUP BY status ORDER BY status",
	"SELECT city, sum(gross_amount) AS revenue FROM gold.orders_daily WHERE order_date BETWEEN DATE '2024-03-08' AND DATE '2024-03-14' GROUP BY city ORDER BY revenue DESC LIMIT 10",
	"SELECT event_type, sum(events) FROM gold.events_hourly WHERE event_date = DATE '2024-03-20' GROUP BY event_type ORDER BY 2 DESC",
	"SELECT step_name, avg(conversion_from_first) FROM gold.funnel_daily GROUP BY step_name ORDER BY 2",
	"SELECT o.order_date, sum(o.orders) AS orders, max(s.signups) AS signups FROM gold.orders_daily o LEFT JOIN gold.signups_daily s ON s.signup_date = o.order_date AND s.city = o.city GROUP BY o.order_date ORDER BY o.order_date",
	"SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'gold' ORDER BY table_name, ordinal_position",
}

// BenchmarkServeLoad (make bench-serve): MEDALLION_SERVE_BENCH_CLIENTS
// clients (default 32) run loadMix in turn against `medallion serve` for
// MEDALLION_SERVE_BENCH_SECONDS (default 60), on a month of demo data
// with duckdb.memory_limit 512MB; then each query of the mix runs through
// `medallion query`, one process each. It reports QPS, p50 and p99
// latency and the server's peak RSS, and fails on any error.
func BenchmarkServeLoad(b *testing.B) {
	clients := envInt(b, "MEDALLION_SERVE_BENCH_CLIENTS", 32)
	seconds := envInt(b, "MEDALLION_SERVE_BENCH_SECONDS", 60)
	dir := b.TempDir()
	bin := filepath.Join(dir, "medallion")
	run(b, "go", "build", "-o", bin, "../cmd/medallion")
	demo := filepath.Join(dir, "demo")
	run(b, bin, "demo", "--dir", demo, "--start", "2024-03-01", "--days", "30", "--events-per-day", "5000")
	cfg := filepath.Join(demo, "medallion.yaml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(f, "duckdb:\n  memory_limit: 512MB\n")
	f.Close()
	addr, httpAddr := testenv.FreeAddr(b), testenv.FreeAddr(b)
	b.Setenv("MEDALLION_SERVE_ADDR", addr)
	b.Setenv("MEDALLION_SERVE_HTTP_ADDR", httpAddr)

	srv := exec.Command(bin, "serve", "--config", cfg)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Process.Kill()
	waitConnect(b, addr)

	b.ResetTimer()
	lat, errs := load(b, addr, clients, time.Duration(seconds)*time.Second)
	b.StopTimer()
	heap := goHeap(b, httpAddr)
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	peak := maxRSS(srv)
	if errs > 0 {
		b.Fatalf("%d statements failed", errs)
	}
	slices.Sort(lat)
	qps := float64(len(lat)) / float64(seconds)
	b.ReportMetric(qps, "queries/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(float64(peak)/(1<<20), "server-peak-MiB")
	b.Logf("serve: %d clients, %d s: %d statements, %.0f/s, p50 %.1f ms, p99 %.1f ms, server peak RSS %d MiB (Go heap in use at the end %d MiB)",
		clients, seconds, len(lat), qps, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), peak>>20, heap>>20)

	// The same queries through medallion query, a process each.
	var cli []time.Duration
	var cliPeak int64
	for range 3 {
		for _, q := range loadMix {
			began := time.Now()
			cmd := exec.Command(bin, "query", "--config", cfg, q)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("medallion query %q: %v\n%s", q, err, out)
			}
			cli = append(cli, time.Since(began))
			cliPeak = max(cliPeak, maxRSS(cmd))
		}
	}
	slices.Sort(cli)
	b.Logf("medallion query: %d runs, one at a time: p50 %.1f ms, p99 %.1f ms, peak RSS %d MiB",
		len(cli), ms(cli[len(cli)/2]), ms(cli[len(cli)*99/100]), cliPeak>>20)
	b.ReportMetric(ms(cli[len(cli)/2]), "cli-p50-ms")
}

// load runs clients connections through loadMix for d, and returns every
// statement's latency and the number that failed.
func load(b *testing.B, addr string, clients int, d time.Duration) ([]time.Duration, int) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	end := time.Now().Add(d)
	for c := range clients {
		wg.Go(func() {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, "postgres://analyst:demo@"+addr+"/medallion?sslmode=disable")
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close(ctx)
			var mine []time.Duration
			failed := 0
			for i := c; time.Now().Before(end); i++ {
				began := time.Now()
				rows, err := conn.Query(ctx, loadMix[i%len(loadMix)])
				if err == nil {
					for rows.Next() {
					}
					rows.Close()
					err = rows.Err()
				}
				if err != nil {
					failed++
					b.Logf("%s: %v", loadMix[i%len(loadMix)], err)
					continue
				}
				mine = append(mine, time.Since(began))
			}
			mu.Lock()
			lat, errs = append(lat, mine...), errs+failed
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, errs
}

func run(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", key, err)
	}
	return n
}

func waitConnect(b *testing.B, addr string) {
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		conn, err := pgx.Connect(context.Background(), "postgres://analyst:demo@"+addr+"/medallion?sslmode=disable")
		if err == nil {
			conn.Close(context.Background())
			return
		}
	}
	b.Fatalf("medallion serve did not answer on %s", addr)
}

// goHeap is the server's Go heap in use, from its /metrics.
func goHeap(b *testing.B, addr string) int64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return int64(seriesValue(b, string(body), "go_memstats_heap_inuse_bytes"))
}

// maxRSS is an exited process's peak resident set.
func maxRSS(cmd *exec.Cmd) int64 {
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
