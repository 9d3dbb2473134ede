package extract_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/internal/testenv"
)

// cluster starts a PostgreSQL server of the test's own: the horizon reads
// every session's open transaction, and the shared server's other tests
// would hold it back.
func cluster(t *testing.T) (context.Context, *pgx.Conn, func() *pgx.Conn) {
	t.Helper()
	url := testenv.StartPostgresCluster(t, nil)
	ctx := context.Background()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	c := connect()
	execSQL(t, c, `CREATE TABLE users (id bigint PRIMARY KEY, email text, updated_at timestamptz NOT NULL DEFAULT now())`)
	return ctx, c, connect
}

func execSQL(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// drain reads batches until one is empty and returns the ids read.
func drain(t *testing.T, ctx context.Context, c *pgx.Conn, x extract.Incremental, pos extract.Position) ([]int64, extract.Position) {
	t.Helper()
	var ids []int64
	for {
		b, err := x.Read(ctx, c, pos)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Rows) == 0 {
			return ids, pos
		}
		for _, r := range b.Rows {
			var row struct{ ID int64 }
			if err := json.Unmarshal(r, &row); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, row.ID)
		}
		// The position survives the meta store's text form.
		next, err := extract.ParsePosition(b.Next.String())
		if err != nil {
			t.Fatal(err)
		}
		pos = next
	}
}

// TestIncrementalTies: 2,500 rows share one watermark and batches hold
// 1,000: every row is read once, in key order, across the tie.
func TestIncrementalTies(t *testing.T) {
	ctx, c, _ := cluster(t)
	execSQL(t, c, `INSERT INTO users (id, email, updated_at) SELECT i, 'u' || i || '@example.com', '2024-01-15 06:00:00+00' FROM generate_series(1, 2500) i`)
	execSQL(t, c, `INSERT INTO users (id, email, updated_at) VALUES (0, 'late@example.com', '2024-01-15 06:00:01+00')`)
	x := extract.Incremental{From: "users", Watermark: "updated_at", Key: []string{"id"}, Batch: 1000}
	ids, pos := drain(t, ctx, c, x, extract.Position{})
	if len(ids) != 2501 || ids[0] != 1 || ids[2499] != 2500 || ids[2500] != 0 {
		t.Fatalf("read %d rows (first %v, last %v)", len(ids), ids[:1], ids[len(ids)-1:])
	}
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("row %d read twice", id)
		}
		seen[id] = true
	}
	execSQL(t, c, `UPDATE users SET email = 'changed@example.com', updated_at = now() WHERE id = 7`)
	again, _ := drain(t, ctx, c, x, pos)
	if len(again) != 1 || again[0] != 7 {
		t.Fatalf("after one update, read %v", again)
	}
}

// TestIncrementalLateCommit: a transaction stamps its row with now() and
// commits after a later transaction's row was read. The reader does not
// read past the open transaction's start, so the late row is read next
// time instead of being skipped.
func TestIncrementalLateCommit(t *testing.T) {
	ctx, c, connect := cluster(t)
	x := extract.Incremental{From: "SELECT id, email, updated_at FROM users", Watermark: "updated_at", Key: []string{"id"}}
	slow := connect()
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO users (id, email) VALUES (1, 'slow@example.com')`); err != nil { // stamped now(): its start
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	execSQL(t, connect(), `INSERT INTO users (id, email) VALUES (2, 'fast@example.com')`) // stamped later, committed first
	ids, pos := drain(t, ctx, c, x, extract.Position{})
	if len(ids) != 0 {
		t.Fatalf("read %v while an older transaction was open: its row would be skipped", ids)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _ = drain(t, ctx, c, x, pos)
	if fmt.Sprint(ids) != "[1 2]" {
		t.Fatalf("after the slow commit, read %v, want [1 2]", ids)
	}
}

// TestIncrementalNeedsToSeeTransactions: a role that cannot see other
// sessions' transactions is refused, and a missing column is named.
func TestIncrementalNeedsToSeeTransactions(t *testing.T) {
	ctx, c, connect := cluster(t)
	execSQL(t, c, `CREATE ROLE reader LOGIN`)
	execSQL(t, c, `GRANT SELECT ON users TO reader`)
	execSQL(t, c, `INSERT INTO users (id, email, updated_at) VALUES (1, 'a@example.com', '2024-01-15 06:00:00+00')`)
	other := connect()
	tx, err := other.Begin(ctx) // another role's session is open
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	cfg := c.Config().Copy()
	cfg.User = "reader"
	reader, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	x := extract.Incremental{From: "users", Watermark: "updated_at", Key: []string{"id"}}
	if _, err := x.Read(ctx, reader, extract.Position{}); !errors.Is(err, extract.ErrCannotSeeTransactions) {
		t.Fatalf("a role that cannot see other sessions: %v", err)
	}
	execSQL(t, c, `GRANT pg_read_all_stats TO reader`)
	if _, err := x.Read(ctx, reader, extract.Position{}); err != nil {
		t.Fatalf("with pg_read_all_stats: %v", err)
	}
	bad := extract.Incremental{From: "users", Watermark: "modified_at", Key: []string{"id"}}
	if _, err := bad.Read(ctx, c, extract.Position{}); err == nil || err.Error() != `incremental extract of users: no column "modified_at"` {
		t.Fatalf("a missing watermark column: %v", err)
	}
}

// collectOut keeps the rows written to it, and fails the write numbered
// failAt (1-based; 0 never).
type collectOut struct {
	writes, failAt int
	ids            []int64
}

func (o *collectOut) Write(_ context.Context, _ extract.Target, rows [][]byte, _ map[string]string) (extract.Written, error) {
	o.writes++
	if o.writes == o.failAt {
		return extract.Written{}, errors.New("storage is down")
	}
	for _, r := range rows {
		var v struct{ ID int64 }
		if err := json.Unmarshal(r, &v); err != nil {
			return extract.Written{}, err
		}
		o.ids = append(o.ids, v.ID)
	}
	return extract.Written{}, nil
}

// TestIncrementalWriteFailsWhileReadingAhead: the batch after the one being
// written is read meanwhile; when that write fails, the run stops with the
// position after the last written batch, the batch read ahead is dropped,
// the connection is usable, and the next run reads on from the position:
// every row once, none lost.
func TestIncrementalWriteFailsWhileReadingAhead(t *testing.T) {
	ctx, c, _ := cluster(t)
	execSQL(t, c, `INSERT INTO users (id, email, updated_at) SELECT i, 'u' || i || '@example.com', '2024-01-15 06:00:00+00' FROM generate_series(1, 2500) i`)
	store, target := localTarget(t, "users")
	x := extract.Incremental{From: "users", Watermark: "updated_at", Key: []string{"id"}, Batch: 1000}
	out := &collectOut{failAt: 2}
	target.Out = out
	if _, err := x.Run(ctx, c, store, target, nil); err == nil || !strings.Contains(err.Error(), "storage is down") {
		t.Fatalf("a run whose second write fails: %v", err)
	}
	st, err := store.Extract(ctx, "app", "users")
	if err != nil || !strings.Contains(st.Position, `"key":["1000"]`) || st.Rows != 1000 {
		t.Fatalf("the position after a failed write: %+v %v", st, err)
	}
	execSQL(t, c, "SELECT 1") // the connection outlives the reader
	out.failAt = 0
	res, err := x.Run(ctx, c, store, target, nil)
	if err != nil || res.Rows != 1500 || len(out.ids) != 2500 || out.ids[1000] != 1001 || out.ids[2499] != 2500 {
		t.Fatalf("the next run: %+v %v, %d ids", res, err, len(out.ids))
	}
}
