package extract_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/internal/testenv"
)

// change is one captured record, as bronze holds it.
type change struct {
	Op      string `json:"op"`
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// headersOf is the envelope headers of the first bronze record.
func headersOf(t *testing.T, target extract.Target) string {
	t.Helper()
	for o, err := range target.Bucket.List(context.Background(), bronze.DomainPrefix(target.Domain.Name)) {
		if err != nil {
			t.Fatal(err)
		}
		raw := readObject(t, target.Bucket, o.Key)
		recs, err := bronze.Decode(strings.NewReader(string(raw)), int64(len(raw)))
		if err != nil || len(recs) == 0 {
			t.Fatal(err)
		}
		return recs[0].Headers
	}
	return ""
}

func changes(t *testing.T, target extract.Target) []change {
	t.Helper()
	var out []change
	for o, err := range target.Bucket.List(context.Background(), bronze.DomainPrefix(target.Domain.Name)) {
		if err != nil {
			t.Fatal(err)
		}
		raw := readObject(t, target.Bucket, o.Key)
		recs, err := bronze.Decode(strings.NewReader(string(raw)), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var c change
			if err := json.Unmarshal([]byte(r.Payload), &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	return out
}

// TestCDC: log-based capture of an orders table on a server with
// wal_level=logical: inserts, every intermediate update and deletes (with
// the key and op "d") reach bronze; the next run starts where the last one
// ended; a run stopped between its bronze files and its position
// re-delivers them; --drop-slot removes the slot.
func TestCDC(t *testing.T) {
	url := testenv.StartPostgresCluster(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4", "max_wal_senders": "4"})
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	execSQL(t, c, `CREATE TABLE orders (order_id text PRIMARY KEY, status text NOT NULL, amount numeric(10,2),
		created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`)
	store, target := localTarget(t, "orders")
	target.Table = "orders"
	orders := target.Domain
	x := extract.CDC{Table: "orders", Slot: "medallion_app_orders", Field: orders.TimestampField, Idle: 500 * time.Millisecond}

	if res, err := x.Run(ctx, c, url, store, target, nil); err != nil || res.Rows != 0 {
		t.Fatalf("the first run (creates the slot): %+v %v", res, err)
	}
	execSQL(t, c, `INSERT INTO orders (order_id, status, amount) VALUES ('o-1', 'placed', 12.75), ('o-2', 'placed', 3.10)`)
	execSQL(t, c, `UPDATE orders SET status = 'accepted', updated_at = now() WHERE order_id = 'o-1'`)
	execSQL(t, c, `UPDATE orders SET status = 'preparing', updated_at = now() WHERE order_id = 'o-1'`)
	execSQL(t, c, `DELETE FROM orders WHERE order_id = 'o-2'`)
	res, err := x.Run(ctx, c, url, store, target, nil)
	if err != nil || res.Rows != 5 {
		t.Fatalf("a run after five changes: %+v %v", res, err)
	}
	got := changes(t, target)
	var ops []string
	for _, ch := range got {
		ops = append(ops, ch.Op+":"+ch.OrderID+":"+ch.Status)
	}
	if strings.Join(ops, " ") != "c:o-1:placed c:o-2:placed u:o-1:accepted u:o-1:preparing d:o-2:" {
		t.Fatalf("captured %v", ops)
	}
	if h := headersOf(t, target); !strings.Contains(h, `"table":"orders"`) || !strings.Contains(h, `"lsn":"`) || !strings.Contains(h, `"source":"app"`) {
		t.Fatalf("the envelope's headers: %s", h)
	}
	st, err := store.Extract(ctx, "app", "orders")
	if err != nil || st.Mode != "cdc" || !strings.Contains(st.Position, `"lsn":"`) || st.Rows != 5 {
		t.Fatalf("state: %+v %v", st, err)
	}
	if res, err := x.Run(ctx, c, url, store, target, nil); err != nil || res.Rows != 0 {
		t.Fatalf("a run with nothing new: %+v %v", res, err)
	}

	// A flush that takes longer than the idle time does not end the run:
	// the second transaction is captured by the same run.
	execSQL(t, c, `INSERT INTO orders (order_id, status) VALUES ('o-3', 'placed')`)
	execSQL(t, c, `INSERT INTO orders (order_id, status) VALUES ('o-4', 'placed')`)
	slow := x
	slow.Batch = 1
	if res, err := slow.Run(ctx, c, url, store, target, func() { time.Sleep(2 * x.Idle) }); err != nil || res.Rows != 2 || res.Batches != 2 {
		t.Fatalf("a run whose flushes outlast the idle time: %+v %v", res, err)
	}

	// A run does not end while the server is still decoding what committed
	// before it started: the server reads 300,000 changes of an unpublished
	// table for longer than the idle time before the order inserted after
	// them in the same transaction, and this run captures that order.
	execSQL(t, c, `CREATE TABLE audit (id int, note text)`)
	execSQL(t, c, `BEGIN; INSERT INTO audit SELECT i, 'note ' || i FROM generate_series(1, 300000) i;
		INSERT INTO orders (order_id, status) VALUES ('o-5', 'placed'); COMMIT`)
	quick := x
	quick.Idle = 50 * time.Millisecond
	if res, err := quick.Run(ctx, c, url, store, target, nil); err != nil || res.Rows != 1 {
		t.Fatalf("a run started while the server still decodes a large transaction: %+v %v", res, err)
	}

	// Stopped between the bronze files and the position: the changes come
	// again, and then the position moves past them.
	execSQL(t, c, `UPDATE orders SET status = 'delivered', updated_at = now() WHERE order_id = 'o-1'`)
	stopped, stop := context.WithCancel(ctx)
	if _, err := x.Run(stopped, c, url, store, target, stop); err == nil {
		t.Fatal("a run stopped before its position moved succeeded")
	}
	res, err = x.Run(ctx, c, url, store, target, nil)
	if err != nil || res.Rows != 1 {
		t.Fatalf("the run after the stop: %+v %v", res, err)
	}
	delivered := 0
	for _, ch := range changes(t, target) {
		if ch.Status == "delivered" {
			delivered++
		}
	}
	if delivered != 2 {
		t.Fatalf("the change written before the stop is in bronze %d times, want 2 (at-least-once)", delivered)
	}
	if res, err := x.Run(ctx, c, url, store, target, nil); err != nil || res.Rows != 0 {
		t.Fatalf("after the re-delivery: %+v %v", res, err)
	}

	// The slot is dropped behind the extract's back: it refuses to go on,
	// since the changes since its position are gone.
	execSQL(t, c, `SELECT pg_drop_replication_slot('medallion_app_orders')`)
	execSQL(t, c, `UPDATE orders SET status = 'lost', updated_at = now() WHERE order_id = 'o-1'`)
	if _, err := x.Run(ctx, c, url, store, target, nil); !errors.Is(err, extract.ErrSlotLost) {
		t.Fatalf("a run whose slot is gone: %v", err)
	}
	must(t, store.ForgetExtract(ctx, "app", "orders"))
	if res, err := x.Run(ctx, c, url, store, target, nil); err != nil || res.Rows != 0 {
		t.Fatalf("a run anew after forgetting the position: %+v %v", res, err)
	}
	if n, err := x.RetainedWAL(ctx, c); err != nil || n < 0 {
		t.Fatalf("retained WAL: %d %v", n, err)
	}
	if err := x.DropSlot(ctx, c); err != nil {
		t.Fatal(err)
	}
	var slots int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("slots after --drop-slot: %d %v", slots, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
