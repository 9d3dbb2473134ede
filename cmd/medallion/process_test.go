package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // database/sql driver "duckdb"
	"github.com/segmentio/kafka-go"

	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sinkProcess is a `medallion sink` in its own process.
type sinkProcess struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// TestSinkProcessesUnderChaos: three `medallion sink` processes of one
// group read a stream from a kfakeserver process. One is SIGKILLed in the
// middle of its batches, one is SIGSTOPped for longer than its session and
// then SIGCONTed. At the end every produced offset is in bronze, the
// committed offsets are the end offsets, and DuckDB reads bronze.
func TestSinkProcessesUnderChaos(t *testing.T) {
	dir := t.TempDir()
	kbin := testenv.Build(t, "internal/kfakeserver")
	mbin := testenv.Build(t, "cmd/medallion")
	k := testenv.StartKfake(t, kbin, "-topic", "raw-events", "-partitions", "6", "-port", "0")
	brokers := []string{k.Addr}
	lake := filepath.Join(dir, "lake")
	cfg := filepath.Join(dir, "medallion.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`storage:
  url: %s
domains: [events]
kafka:
  brokers: [%s]
  group_id: chaos
  session_timeout: 1s
sink:
  flush_messages: 200
  flush_interval: 200ms
  http_addr: ""
  shutdown_timeout: 5s
`, lake, k.Addr)), 0o644))

	// A steady stream, so that every member is always in the middle of
	// a batch.
	msgs, err := generate.Generate(generate.Options{Seed: 9, Start: medtype.MustDate("2024-01-15"), Days: 1, EventsPerDay: 120_000, Domains: []string{"events"}})
	must(t, err)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "raw-events", Balancer: &kafka.RoundRobin{}, BatchSize: 500,
			BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
		defer w.Close()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(msgs); i += 500 {
			batch := make([]kafka.Message, 0, 500)
			for _, m := range msgs[i:min(i+500, len(msgs))] {
				batch = append(batch, kafka.Message{Key: m.Key, Value: m.Value})
			}
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			<-tick.C
		}
	}()

	start := func(name string) *sinkProcess {
		log := filepath.Join(dir, name+".log")
		f, err := os.Create(log)
		must(t, err)
		cmd := exec.Command(mbin, "sink", "--config", cfg)
		cmd.Stdout, cmd.Stderr = f, f
		must(t, cmd.Start())
		p := &sinkProcess{name: name, cmd: cmd, log: log, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait(); f.Close() }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
		return p
	}
	killed, paused, steady := start("killed"), start("paused"), start("steady")
	untilCommits := func(n int) {
		t.Helper()
		deadline := time.After(time.Minute)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			sum := int64(0)
			for _, off := range testenv.GroupCommitted(t, brokers, "chaos", "raw-events", 6) {
				sum += max(off, 0)
			}
			if sum >= int64(n) {
				return
			}
			select {
			case <-deadline:
				t.Fatalf("the group committed %d messages, waiting for %d", sum, n)
			case <-tick.C:
			}
		}
	}
	untilCommits(len(msgs) / 6)
	killedAt := time.Now()
	must(t, killed.cmd.Process.Signal(syscall.SIGKILL)) // in the middle of its batches
	untilCommits(len(msgs) / 3)
	pausedAt := time.Now()
	must(t, paused.cmd.Process.Signal(syscall.SIGSTOP))
	time.Sleep(3 * time.Second) // the fault itself: paused past its 1s session
	must(t, paused.cmd.Process.Signal(syscall.SIGCONT))
	<-produced
	ends := testenv.EndOffsets(t, brokers, "raw-events", 6)
	total := int64(0)
	for _, end := range ends {
		total += end
	}
	if total != int64(len(msgs)) {
		t.Fatalf("the broker holds %d messages, %d were produced", total, len(msgs))
	}
	untilCommits(len(msgs))

	for _, p := range []*sinkProcess{paused, steady} {
		must(t, p.cmd.Process.Signal(syscall.SIGTERM))
		if err := <-p.done; err != nil {
			out, _ := os.ReadFile(p.log)
			t.Fatalf("the %s sink exited with %v after SIGTERM:\n%s", p.name, err, out)
		}
		p.done <- nil // for the cleanup
	}
	// Each fault moved partitions: the group rebalanced after the kill, and
	// the paused member lost its partitions while it was stopped.
	if !rebalancedAfter(t, steady.log, killedAt) || !rebalancedAfter(t, paused.log, pausedAt) {
		t.Fatal("a fault did not make the group rebalance: the test proves less than it says")
	}
	if got := testenv.GroupCommitted(t, brokers, "chaos", "raw-events", 6); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}

	// DuckDB reads every bronze file, and every offset is there.
	db, err := sql.Open("duckdb", "")
	must(t, err)
	defer db.Close()
	var rows, distinct int64
	must(t, db.QueryRow(fmt.Sprintf(`SELECT count(*), count(DISTINCT (_partition, _offset)) FROM read_parquet('%s/bronze/**/*.parquet')
		WHERE _topic = 'raw-events'`, lake)).Scan(&rows, &distinct))
	if distinct != total {
		t.Fatalf("bronze holds %d distinct offsets, want every one of the %d produced", distinct, total)
	}
	for p, end := range ends {
		var n, lo, hi int64
		must(t, db.QueryRow(fmt.Sprintf(`SELECT count(DISTINCT _offset), min(_offset), max(_offset) FROM read_parquet('%s/bronze/**/*.parquet')
			WHERE _partition = %d`, lake, p)).Scan(&n, &lo, &hi))
		if n != end || lo != 0 || hi != end-1 {
			t.Fatalf("partition %d: bronze holds %d offsets from %d to %d, want 0 to %d", p, n, lo, hi, end-1)
		}
	}
	t.Logf("%d messages; bronze holds %d rows (%d from a member that lost its partitions)", total, rows, rows-distinct)
}

// rebalancedAfter reports whether a sink's log shows a generation ending
// after at.
func rebalancedAfter(t *testing.T, log string, at time.Time) bool {
	t.Helper()
	data, err := os.ReadFile(log)
	must(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		ts, ok := strings.CutPrefix(line, "time=")
		if !ok || !strings.Contains(line, `msg="generation ended`) {
			continue
		}
		ts, _, _ = strings.Cut(ts, " ")
		if when, err := time.Parse(time.RFC3339Nano, ts); err == nil && when.After(at) {
			return true
		}
	}
	return false
}
