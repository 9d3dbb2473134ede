package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/internal/testenv"
)

// TestExtractCDCCommand: a cdc extract creates its slot, captures the
// changes made since, warns when the slot keeps more WAL than allowed, and
// --drop-slot removes it.
func TestExtractCDCCommand(t *testing.T) {
	url := testenv.StartPostgresCluster(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4", "max_wal_senders": "4"})
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	if _, err := pg.Exec(ctx, `CREATE TABLE app_orders (order_id text PRIMARY KEY, status text, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	cfg := project(t, "sqlite://./medallion.db")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sources := "sources:\n  app:\n    url: " + url + "\n    extracts:\n      orders: {mode: cdc, table: app_orders, max_retained_wal: 1}\n"
	if err := os.WriteFile(cfg, append(raw, sources...), 0o644); err != nil {
		t.Fatal(err)
	}
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
