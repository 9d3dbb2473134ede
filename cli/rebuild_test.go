package cli_test

import (
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
)

// TestBackfillRebuild: backfill --rebuild --table rebuilds a gold table
// from all of its domain's bronze, to the same rows, in new snapshots;
// misused flags exit 2 and say why.
func TestBackfillRebuild(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	for _, args := range [][]string{
		{"generate", "--config", cfg, "--start", "2024-01-15", "--days", "2", "--events-per-day", "300", "--seed", "9", "--late", "0"},
		{"run", "--config", cfg},
	} {
		if r := run(t, args...); r.code != cli.ExitOK {
			t.Fatalf("%s: exit %d\n%s%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rebuild"}, "--rebuild needs --table"},
		{[]string{"--rebuild", "--table", "gold.orders_daily", "--from", "2024-01-15", "--to", "2024-01-15"}, "drop --from and --to"},
		{[]string{"--rebuild", "--table", "gold.orders_daily", "--domain", "orders"}, "drop --domain"},
		{[]string{"--rebuild", "--table", "gold.nope"}, "no table gold.nope"},
	} {
		r := run(t, append([]string{"backfill", "--config", cfg}, tc.args...)...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("backfill %v: exit %d\n%s%s", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	query := []string{"query", "--config", cfg, "SELECT order_date, city, status, orders, gross_amount FROM gold.orders_daily ORDER BY ALL"}
	before := run(t, query...)
	tables := run(t, "tables", "--config", cfg)
	r := run(t, "backfill", "--config", cfg, "--rebuild", "--table", "gold.orders_daily")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "orders") {
		t.Fatalf("backfill --rebuild: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := run(t, query...); after.stdout != before.stdout || before.stdout == "" {
		t.Fatalf("gold.orders_daily after the rebuild:\n%s\nbefore:\n%s", after.stdout, before.stdout)
	}
	if again := run(t, "tables", "--config", cfg); again.stdout == tables.stdout {
		t.Fatal("the rebuild committed no snapshot")
	}
}
