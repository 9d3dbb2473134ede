package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
)

// TestExtractCDCCommand: a cdc extract creates its slot, captures the
// changes made since, warns when the slot keeps more WAL than allowed, and
// --drop-slot removes it.
func TestExtractCDCCommand(t *testing.T) {
	url, pg := sourceDB(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4", "max_wal_senders": "4"},
		`CREATE TABLE app_orders (order_id text PRIMARY KEY, status text, created_at timestamptz NOT NULL DEFAULT now())`)
	ctx := context.Background()
	cfg := projectWith(t, "sources:\n  app:\n    url: "+url+"\n    extracts:\n      orders: {mode: cdc, table: app_orders, max_retained_wal: 1}\n")
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
	if !strings.Contains(squash(r.stdout), "app orders cdc 41 LSN 0/") {
		t.Fatalf("status:\n%s", r.stdout)
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
