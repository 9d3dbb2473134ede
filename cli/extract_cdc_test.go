package cli_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/internal/testenv"
)

// TestExtractCDCCommand: a cdc extract creates its slot, captures the
// changes made since, warns when the slot keeps more WAL than allowed (in
// its output, status and the metrics it pushes), and --drop-slot removes
// it.
func TestExtractCDCCommand(t *testing.T) {
	url, pg := sourceDB(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4", "max_wal_senders": "4"},
		`CREATE TABLE app_orders (order_id text PRIMARY KEY, status text, created_at timestamptz NOT NULL DEFAULT now())`)
	ctx := context.Background()
	gateway := testenv.StartPushgateway(t)
	cfg := projectWith(t, "metrics:\n  pushgateway_url: "+gateway+"\nsources:\n  app:\n    url: "+url+
		"\n    extracts:\n      orders: {mode: cdc, table: app_orders, max_retained_wal: 1}\n")
	r := run(t, "extract", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "app.orders: 0 rows") {
		t.Fatalf("the first cdc extract: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := pg.Exec(ctx, `INSERT INTO app_orders (order_id, status) SELECT 'o-' || i, 'placed' FROM generate_series(1, 40) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Exec(ctx, `DELETE FROM app_orders WHERE order_id = 'o-7'`); err != nil {
		t.Fatal(err)
	}
	r = run(t, "extract", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "app.orders: 41 rows in 1 batches into orders bronze") ||
		!strings.Contains(r.stdout, "WARNING: app.orders: the slot medallion_app_orders keeps") {
		t.Fatalf("a cdc extract after 41 changes: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "status", "--config", cfg)
	if !strings.Contains(squash(r.stdout), "app orders cdc 41 LSN 0/") || !strings.Contains(r.stdout, "B of WAL") ||
		!strings.Contains(r.stdout, "WARNING: app.orders: the slot medallion_app_orders keeps") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	metrics := testenv.Get(t, gateway+"/metrics")
	for _, want := range []string{`medallion_extract_rows{command="extract",extract="orders",instance=`, `medallion_extract_retained_wal_over_limit{command="extract",extract="orders"`,
		`medallion_extract_last_success_timestamp_seconds{extract="orders",instance="",job="medallion",source="app"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("the Pushgateway lacks %s:\n%s", want, metrics)
		}
	}
	over := regexp.MustCompile(`(?m)^medallion_extract_retained_wal_over_limit\{[^}]*extract="orders"[^}]*\} 1$`)
	if !strings.Contains(metrics, `mode="cdc",source="app"} 41`) || !over.MatchString(metrics) {
		t.Errorf("rows or WAL over the limit not pushed:\n%s", metrics)
	}
	r = run(t, "extract", "--config", cfg, "--drop-slot")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "dropped the replication slot medallion_app_orders") {
		t.Fatalf("--drop-slot: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var slots int
	if err := pg.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("slots after --drop-slot: %d %v", slots, err)
	}
}
