package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
)

// TestVerifyAndRepair: a live gold file overwritten on disk is named by
// verify (exit 1); a backfill of its date rewrites it (the write does not
// skip a damaged file), after which verify passes and the table holds the
// rows it held before.
func TestVerifyAndRepair(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	for _, args := range [][]string{
		{"generate", "--config", cfg, "--start", "2024-01-15", "--days", "2", "--events-per-day", "300", "--seed", "9", "--late", "0"},
		{"run", "--config", cfg},
	} {
		if r := run(t, args...); r.code != cli.ExitOK {
			t.Fatalf("%s: exit %d\n%s%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
	query := []string{"query", "--config", cfg, "SELECT order_date, status, orders, gross_amount FROM gold.orders_daily ORDER BY ALL"}
	before := run(t, query...)
	if r := run(t, "verify", "--config", cfg); r.code != cli.ExitOK || !strings.Contains(r.stdout, "0 damaged or missing") {
		t.Fatalf("verify of a healthy lake: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lakeDir := filepath.Join(filepath.Dir(cfg), "lake", "warehouse", "gold", "orders_daily", "data")
	damaged, _ := filepath.Glob(filepath.Join(lakeDir, "order_date=2024-01-16", "*.parquet"))
	other, _ := filepath.Glob(filepath.Join(lakeDir, "order_date=2024-01-15", "*.parquet"))
	if len(damaged) != 1 || len(other) != 1 {
		t.Fatalf("gold.orders_daily files: %v %v", damaged, other)
	}
	data, err := os.ReadFile(other[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(damaged[0], data, 0o644); err != nil { // another day's rows
		t.Fatal(err)
	}
	r := run(t, "verify", "--config", cfg, "--table", "gold.orders_daily")
	if r.code != cli.ExitFailed || !strings.Contains(r.stdout, "DAMAGED gold.orders_daily: warehouse/gold/orders_daily/data/order_date=2024-01-16/"+filepath.Base(damaged[0])) {
		t.Fatalf("verify of a damaged file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "backfill", "--config", cfg, "--from", "2024-01-16", "--to", "2024-01-16", "--domain", "orders"); r.code != cli.ExitOK {
		t.Fatalf("backfill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "verify", "--config", cfg); r.code != cli.ExitOK {
		t.Fatalf("verify after the repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := run(t, query...); after.stdout != before.stdout || before.stdout == "" {
		t.Fatalf("gold.orders_daily after the repair:\n%s\nbefore:\n%s", after.stdout, before.stdout)
	}
	// --force rewrites a partition that holds its rows: a new file, the
	// same rows.
	live, _ := filepath.Glob(filepath.Join(lakeDir, "order_date=2024-01-15", "*.parquet"))
	if r := run(t, "backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-01-15", "--domain", "orders", "--force"); r.code != cli.ExitOK {
		t.Fatalf("backfill --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	now, _ := filepath.Glob(filepath.Join(lakeDir, "order_date=2024-01-15", "*.parquet"))
	if len(now) != len(live)+1 {
		t.Fatalf("backfill --force wrote no new file: %v, then %v", live, now)
	}
	if after := run(t, query...); after.stdout != before.stdout {
		t.Fatalf("gold.orders_daily after backfill --force:\n%s\nbefore:\n%s", after.stdout, before.stdout)
	}
}
