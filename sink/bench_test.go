package sink_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// Sink benchmark (BENCHMARKS.md): MEDALLION_SINK_BENCH_MESSAGES messages
// (default 1,000,000, about 300 bytes each) in six partitions, served by
// kfake in a separate process on loopback; sunk to local bronze with the
// default sink settings, or MEDALLION_SINK_BENCH_FLUSH messages per batch.
// Run each benchmark in its own process:
//
//	make bench-sink

func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("MEDALLION_SINK_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// broker starts internal/kfakeserver filled with n messages and returns
// its address and process id.
func broker(b *testing.B, n int) (string, int) {
	b.Helper()
	k := testenv.StartKfake(b, testenv.Build(b, "internal/kfakeserver"), "-port", "0", "-partitions", "6", "-messages", strconv.Itoa(n))
	return k.Addr, k.Pid()
}

// usage is the benchmark's own wall and CPU time, and the broker's CPU
// time: both share the machine's cores.
type usage struct {
	wall   time.Time
	cpu    time.Duration
	broker time.Duration
}

func now(brokerPid int) usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return usage{time.Now(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), procCPU(brokerPid)}
}

// procCPU is a process's user and system time, from /proc/<pid>/stat (in
// clock ticks of 10 ms); 0 if it cannot be read.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func report(b *testing.B, start usage, brokerPid int, msgs, bytes int64) {
	end := now(brokerPid)
	secs := end.wall.Sub(start.wall).Seconds()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(msgs)/secs, "msgs/s")
	b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
	b.ReportMetric((end.cpu - start.cpu).Seconds(), "cpu-s")
	b.ReportMetric((end.broker - start.broker).Seconds(), "broker-cpu-s")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB")
}

// BenchmarkSink sinks the backlog to local bronze with --until-end.
func BenchmarkSink(b *testing.B) {
	n := benchMessages()
	for i := 0; i < b.N; i++ {
		addr, pid := broker(b, n)
		bucket, err := filesystem.New(filesystem.Config{Root: benchRoot(b)})
		if err != nil {
			b.Fatal(err)
		}
		doms, err := config.BuiltinDomains()
		if err != nil {
			b.Fatal(err)
		}
		var events []config.Domain
		for _, d := range doms {
			if d.Name == "events" {
				events = append(events, d)
			}
		}
		sc := config.Defaults().Sink
		if f, err := strconv.Atoi(os.Getenv("MEDALLION_SINK_BENCH_FLUSH")); err == nil && f > 0 {
			sc.FlushMessages = f // default: the shipped default, 1000
		}
		s, err := sink.New(sink.Options{Brokers: []string{addr}, GroupID: "bench", Domains: events, Sink: sc,
			Bucket: bucket, UntilEnd: true, SessionTimeout: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := now(pid)
		if err := s.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st := s.Stats()
		if st.Written.Load() != int64(n) {
			b.Fatalf("wrote %d of %d messages", st.Written.Load(), n)
		}
		report(b, start, pid, st.Consumed.Load(), st.Bytes.Load())
	}
}

// BenchmarkConsumeCeiling reads the same backlog with kafka-go, one reader
// per partition and a no-op handler: the ceiling for the sink.
func BenchmarkConsumeCeiling(b *testing.B) {
	n := benchMessages()
	for i := 0; i < b.N; i++ {
		addr, pid := broker(b, n)
		b.ResetTimer()
		start := now(pid)
		var got, bytes atomic.Int64
		var wg sync.WaitGroup
		for p := 0; p < 6; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := kafka.NewReader(sink.ReaderConfig([]string{addr}, "raw-events", p, nil, true))
				defer r.Close()
				end := int64(-1)
				conn, err := kafka.DialLeader(context.Background(), "tcp", addr, "raw-events", p)
				if err == nil {
					end, _ = conn.ReadLastOffset()
					conn.Close()
				}
				for end > 0 {
					m, err := r.FetchMessage(context.Background())
					if err != nil {
						return
					}
					got.Add(1)
					bytes.Add(int64(len(m.Value)))
					if m.Offset+1 >= end {
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		if got.Load() != int64(n) {
			b.Fatalf("read %d of %d", got.Load(), n)
		}
		report(b, start, pid, got.Load(), bytes.Load())
	}
}

// benchRoot is a fresh folder for the benchmark's bronze under the
// checkout's .bench/, not the temp folder: on this machine's ext4 (no
// journal), creating a file in a block group where many files were
// deleted in the last minutes scans past each of them, and the go tool
// itself churns the temp folder. A create there took 0.3-0.4 ms against
// 0.01-0.1 ms elsewhere, a tenth of the sink's CPU (BENCHMARKS.md). For
// the same reason `make bench-sink` sets MEDALLION_SINK_BENCH_KEEP: the
// runs' bronze stays until `make clean`.
func benchRoot(b *testing.B) string {
	parent := filepath.Join(testenv.RepoRoot(b), ".bench")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(parent, "sink-")
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("MEDALLION_SINK_BENCH_KEEP") == "" {
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}
