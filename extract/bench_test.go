package extract_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/internal/testenv"
)

// BenchmarkExtract: rows per second of an incremental and of a cdc extract
// of an orders table with its items nested (json_agg), into local bronze,
// on a PostgreSQL cluster of the benchmark's own (wal_level=logical).
// MEDALLION_EXTRACT_BENCH_ROWS orders (default 1,000,000), two items each.
//
//	make bench-extract   (see BENCHMARKS.md)
func BenchmarkExtract(b *testing.B) {
	n, batch := 1_000_000, 0
	if v, err := strconv.Atoi(os.Getenv("MEDALLION_EXTRACT_BENCH_BATCH")); err == nil {
		batch = v
	}
	if v, err := strconv.Atoi(os.Getenv("MEDALLION_EXTRACT_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	url := testenv.StartPostgresCluster(b, map[string]string{"wal_level": "logical", "max_replication_slots": "4",
		"max_wal_senders": "4", "shared_buffers": "512MB", "max_wal_size": "4GB"})
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE orders (order_id text PRIMARY KEY, user_id text, restaurant_id text, status text, city text, currency text,
			total_amount numeric(10,2), created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)`,
		`CREATE TABLE order_items (order_id text REFERENCES orders, item_id text, name text, quantity int, unit_price numeric(8,2), PRIMARY KEY (order_id, item_id))`,
		`CREATE INDEX orders_watermark ON orders (updated_at, order_id)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	fill := func(from, to int) {
		b.Helper()
		for _, q := range []string{
			`INSERT INTO orders SELECT 'o-' || i, 'u-' || (i % 5000), 'r-' || (i % 300), 'placed', 'Austin', 'USD', 12.75,
				timestamptz '2024-01-15 00:00:00+00' + (i % 86400) * interval '1 second', timestamptz '2024-01-15 00:00:00+00' + (i % 86400) * interval '1 second'
				FROM generate_series($1::int, $2::int) i`,
			`INSERT INTO order_items SELECT 'o-' || i, 'm-' || k, 'Item ' || k, 1 + k, 4.25 FROM generate_series($1::int, $2::int) i, generate_series(1, 2) k`,
		} {
			if _, err := c.Exec(ctx, q, from, to); err != nil {
				b.Fatal(err)
			}
		}
	}
	query := `SELECT o.*, (SELECT json_agg(json_build_object('item_id', i.item_id, 'name', i.name, 'quantity', i.quantity, 'unit_price', i.unit_price))
		FROM order_items i WHERE i.order_id = o.order_id) AS items FROM orders o`
	// The slot exists before the rows are written, so cdc captures them.
	cdcStore, cdcTarget := localTarget(b, "orders")
	cdc := extract.CDC{Table: "orders", Slot: "medallion_bench", Field: cdcTarget.Domain.TimestampField, Idle: time.Second}
	if _, err := cdc.Run(ctx, c, url, cdcStore, cdcTarget, nil); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= n; i += 100_000 {
		fill(i, min(i+99_999, n))
	}
	if _, err := c.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}

	b.Run("incremental", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			store, t := localTarget(b, "orders")
			x := extract.Incremental{From: query, Watermark: "updated_at", Key: []string{"order_id"}, Batch: batch}
			start := time.Now()
			res, err := x.Run(ctx, c, store, t, nil)
			if err != nil || res.Rows != n {
				b.Fatalf("%+v %v", res, err)
			}
			b.ReportMetric(float64(res.Rows)/time.Since(start).Seconds(), "rows/s")
		}
	})
	b.Run("cdc", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			start := time.Now()
			res, err := cdc.Run(ctx, c, url, cdcStore, cdcTarget, nil)
			if err != nil || res.Rows != n {
				b.Fatalf("%+v %v", res, err)
			}
			took := time.Since(start) - cdc.Idle // the idle wait that ends a run
			b.ReportMetric(float64(res.Rows)/took.Seconds(), "rows/s")
		}
	})
}
