package cli_test

import (
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/internal/testenv"
)

// TestWorkerCommand: run --no-process queues the partitions and a worker
// drains them; a worker refuses the SQLite store and needs one mode.
func TestWorkerCommand(t *testing.T) {
	cfg := project(t, testenv.PostgresSchema(t))
	seed(t, cfg)
	gateway := testenv.StartPushgateway(t)
	t.Setenv("MEDALLION_METRICS_PUSHGATEWAY_URL", gateway)
	r := run(t, "run", "--config", cfg, "--no-process")
	if r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "TOTAL 8 8 0 0 0 0 0 0") || !strings.Contains(r.stdout, "8 partitions are queued for `medallion worker`") {
		t.Fatalf("run --no-process: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "worker", "--config", cfg, "--drain", "--workers", "2")
	if r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "TOTAL 0 0 0 0 8 8 0 0") || !strings.HasPrefix(r.stdout, "Worker ") {
		t.Fatalf("worker --drain: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	metrics := testenv.Get(t, gateway+"/metrics")
	for _, want := range []string{`medallion_partitions_processed{command="run",domain="events",`, `medallion_partitions_processed{command="worker",domain="events",`} {
		i := strings.Index(metrics, want)
		if i < 0 {
			t.Fatalf("the pushgateway has no %s...:\n%s", want, metrics)
		}
		line, _, _ := strings.Cut(metrics[i:], "\n")
		if value := line[strings.LastIndex(line, " ")+1:]; value != map[bool]string{true: "0", false: "2"}[strings.Contains(want, `"run"`)] {
			t.Fatalf("pushed %s", line)
		}
	}
	if !strings.Contains(metrics, `medallion_last_success_timestamp_seconds{domain="orders",`) {
		t.Fatalf("no last success time was pushed:\n%s", metrics)
	}
	r = run(t, "worker", "--config", cfg, "--drain")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "The queue is empty.") {
		t.Fatalf("worker --drain on an empty queue: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, "backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-01-15", "--no-process")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "4 partitions are queued") {
		t.Fatalf("backfill --no-process: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "worker", "--config", cfg, "--drain")
	if r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "TOTAL 0 0 0 0 4 4 0 0") {
		t.Fatalf("worker --drain after a backfill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "status", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "worker") {
		t.Fatalf("status after the worker: exit %d\n%s", r.code, r.stdout)
	}

	r = run(t, "worker", "--config", cfg)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "exactly one of --drain") {
		t.Fatalf("worker without a mode: exit %d\n%s", r.code, r.stderr)
	}
	sqlite := project(t, "sqlite://./medallion.db")
	r = run(t, "worker", "--config", sqlite, "--follow")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "needs the PostgreSQL meta store") || !strings.Contains(r.stderr, "medallion run --workers N") {
		t.Fatalf("worker on SQLite: exit %d\n%s", r.code, r.stderr)
	}
}
