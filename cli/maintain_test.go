package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/cli"
)

// TestMaintainKeepsTimeTravel: two daily runs and a forced backfill leave
// replaced files and old snapshots. maintain, with a retention window (set
// from the environment) starting just after the second run, deletes an old
// orphan but keeps a young one and every file the window needs: query
// --as-of still reads the states after the second run and after the
// backfill, while the state after the first run, beyond the window, is
// refused. With no window only the backfill's files stay.
func TestMaintainKeepsTimeTravel(t *testing.T) {
	for name, metaURL := range stores(t) {
		t.Run(name, func(t *testing.T) {
			cfg := project(t, metaURL)
			must := func(args ...string) string { t.Helper(); return mustRun(t, cfg, args...) }
			const q = "SELECT order_date, status, orders, gross_amount FROM gold.orders_daily ORDER BY ALL"
			pause := func() time.Time {
				time.Sleep(20 * time.Millisecond) // distinct commit milliseconds
				now := time.Now()
				time.Sleep(20 * time.Millisecond)
				return now
			}
			must("generate", "--start", "2024-01-15", "--days", "1", "--events-per-day", "200", "--seed", "3", "--late", "0")
			if out := must("run"); !strings.Contains(out, "maintain: maintained") {
				t.Fatalf("run did not maintain:\n%s", out)
			}
			t1, q1 := pause(), must("query", q)
			must("generate", "--start", "2024-01-16", "--days", "1", "--events-per-day", "200", "--seed", "4", "--late", "0")
			must("run")
			t2, q2 := pause(), must("query", q)
			time.Sleep(2 * time.Second) // room for the retention window to start between t2 and the backfill
			must("backfill", "--from", "2024-01-15", "--to", "2024-01-16", "--force")
			t3 := pause()
			if q1 == q2 {
				t.Fatal("the second day changed nothing")
			}

			data := filepath.Join(filepath.Dir(cfg), "lake", "warehouse", "gold", "orders_daily", "data")
			old, young := filepath.Join(data, "crashed.parquet"), filepath.Join(data, "in-flight.parquet")
			for _, f := range []string{old, young} {
				if err := os.WriteFile(f, []byte("a writer's leftover"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(old, time.Now().Add(-48*time.Hour), time.Now().Add(-48*time.Hour)); err != nil {
				t.Fatal(err)
			}
			before, _ := filepath.Glob(filepath.Join(data, "*", "*.parquet"))

			t.Setenv("MEDALLION_LAKE_ORPHAN_AGE", "1h")
			dry := must("maintain", "--dry-run")
			if now, _ := filepath.Glob(filepath.Join(data, "*", "*.parquet")); len(now) != len(before) || !strings.Contains(dry, "would delete") {
				t.Fatalf("the dry run changed files (%d, was %d):\n%s", len(now), len(before), dry)
			}
			t.Setenv("MEDALLION_LAKE_SNAPSHOT_RETENTION", time.Since(t2).String()) // the window starts just after t2
			out := must("maintain")
			t.Log(out)
			if after, _ := filepath.Glob(filepath.Join(data, "*", "*.parquet")); len(after) != 4 || len(before) != 4 {
				t.Fatalf("gold.orders_daily data files: %d before, %d after maintain", len(before), len(after))
			}
			if _, err := os.Stat(old); err == nil || !strings.Contains(out, "crashed.parquet (19 B, orphan)") {
				t.Fatalf("the old orphan is still there:\n%s", out)
			}
			if _, err := os.Stat(young); err != nil {
				t.Fatalf("the young orphan was deleted: %v", err)
			}
			for _, c := range []struct {
				at   time.Time
				want string
			}{{t2, q2}, {t3, q2}, {time.Now(), q2}} {
				if got := must("query", "--as-of", c.at.UTC().Format(time.RFC3339Nano), q); got != c.want {
					t.Fatalf("as of %s:\n%s\nwant:\n%s", c.at, got, c.want)
				}
			}
			r := run(t, "query", "--config", cfg, "--as-of", t1.UTC().Format(time.RFC3339Nano), q)
			if r.code == cli.ExitOK || !strings.Contains(r.stderr, "has no snapshot as of") || !strings.Contains(r.stderr, "lake.snapshot_retention") {
				t.Fatalf("as of %s, before the retention window: exit %d\n%s%s", t1, r.code, r.stdout, r.stderr)
			}
			t.Logf("beyond the window: %s", r.stderr)

			// With no window, only the current snapshot stays, and only the
			// rewritten files.
			t.Setenv("MEDALLION_LAKE_SNAPSHOT_RETENTION", "0s")
			must("maintain")
			if after, _ := filepath.Glob(filepath.Join(data, "*", "*.parquet")); len(after) != 2 {
				t.Fatalf("gold.orders_daily data files after maintain with no window: %d", len(after))
			}
			if got := must("query", q); got != q2 {
				t.Fatalf("after maintain with no window:\n%s\nwant:\n%s", got, q2)
			}
			if r := run(t, "verify", "--config", cfg); r.code != cli.ExitOK {
				t.Fatalf("verify after maintain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			// A short orphan age is warned about, not refused.
			t.Setenv("MEDALLION_LAKE_ORPHAN_AGE", "10s")
			if r := run(t, "maintain", "--config", cfg); r.code != cli.ExitOK || !strings.Contains(r.stderr, "lake.orphan_age is 10s") {
				t.Fatalf("maintain with a 10s orphan age: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestBronzeRetentionCommands: with bronze.retention from the environment,
// maintain archives the old partitions and deletes their bronze; status
// counts them as ARCHIVED, query still reads their rows, and a backfill
// over them exits 2 naming them.
func TestBronzeRetentionCommands(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	must := func(args ...string) string { t.Helper(); return mustRun(t, cfg, args...) }
	must("generate", "--start", "2024-01-15", "--days", "2", "--events-per-day", "200", "--seed", "3", "--late", "0")
	must("run")
	const q = "SELECT count(*) FROM gold.orders_daily"
	rows := must("query", q)
	bronzeGlob := filepath.Join(filepath.Dir(cfg), "lake", "bronze", "*", "*", "*.parquet")
	if before, _ := filepath.Glob(bronzeGlob); len(before) == 0 {
		t.Fatal("no bronze files to begin with")
	}
	t.Setenv("MEDALLION_BRONZE_RETENTION", "400d")
	out := must("maintain")
	if !strings.Contains(out, ": 8 archived,") || !strings.Contains(out, "archived orders/2024-01-15") {
		t.Fatalf("maintain with bronze.retention:\n%s", out)
	}
	if left, _ := filepath.Glob(bronzeGlob); len(left) != 0 {
		t.Fatalf("bronze files left: %v", left)
	}
	if status := must("status"); !strings.Contains(squash(status), "TOTAL 0 0 0 8 0 0 0 0 0 8") {
		t.Fatalf("status does not count the archived partitions:\n%s", status)
	}
	if got := must("query", q); got != rows {
		t.Fatalf("after retention gold.orders_daily reads\n%s, was\n%s", got, rows)
	}
	r := run(t, "backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-01-16", "--domain", "orders")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "orders/2024-01-15, orders/2024-01-16") || !strings.Contains(r.stderr, "bronze.retention") {
		t.Fatalf("backfill over archived partitions: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// mustRun runs a command with --config cfg, fails the test unless it exits
// 0, and returns its output.
func mustRun(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	r := run(t, append(args, "--config", cfg)...)
	if r.code != cli.ExitOK {
		t.Fatalf("%s: exit %d\n%s%s", args[0], r.code, r.stdout, r.stderr)
	}
	return r.stdout
}
