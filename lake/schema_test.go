package lake_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
)

// TestSchemaEvolution: a column added by the SQL joins the table as an
// optional column, and int, float and decimal columns widen in place; the
// file written before reads the new column as NULL and the widened ones in
// their new type, through DuckDB (Relation) and through iceberg-go's own
// reader, which maps the files' columns by name. A dropped, renamed,
// narrowed or retyped column is refused naming the table, the column, both
// types and the rebuild command, and leaves the table as it was.
func TestSchemaEvolution(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "gold", Name: "sales"}
			def := lake.TableDef{ID: id, PartitionColumn: "day"}
			write := func(day, cols string) error {
				exec(t, c, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE src AS SELECT DATE '%s' AS day, %s FROM range(3) r(i)", day, cols))
				_, err := b.lake.Write(ctx, c, def, "src", lake.PartitionScope("day", medtype.MustDate(day)), b.stage)
				return err
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(write("2024-01-15", "i::INTEGER AS n, i::FLOAT AS x, i::DECIMAL(9,2) AS amount"))
			must(write("2024-01-16", "(i + 10)::BIGINT AS n, i::DOUBLE AS x, i::DECIMAL(18,2) AS amount, 'web' AS channel"))

			tbl, err := b.lake.Load(ctx, id)
			must(err)
			if got := fmt.Sprint(tbl.Schema()); !strings.Contains(got, "n: optional long") || !strings.Contains(got, "x: optional double") ||
				!strings.Contains(got, "amount: optional decimal(18, 2)") || !strings.Contains(got, "channel: optional string") {
				t.Fatalf("evolved schema:\n%s", got)
			}
			files, err := b.lake.Files(ctx, id, nil, lake.Snapshot{})
			must(err)
			paths, err := b.lake.Fetch(ctx, files, t.TempDir())
			must(err)
			rel, err := b.lake.Relation(ctx, c, id, lake.Snapshot{}, paths)
			must(err)
			got := strings.Join(queryRows(t, c, "SELECT day, n, typeof(n), x, amount, coalesce(channel, 'NULL') FROM "+rel+" ORDER BY day, n"), "\n")
			want := strings.Join([]string{
				"2024-01-15 0 BIGINT 0.0 0.00 NULL", "2024-01-15 1 BIGINT 1.0 1.00 NULL", "2024-01-15 2 BIGINT 2.0 2.00 NULL",
				"2024-01-16 10 BIGINT 0.0 0.00 web", "2024-01-16 11 BIGINT 1.0 1.00 web", "2024-01-16 12 BIGINT 2.0 2.00 web"}, "\n")
			if got != want {
				t.Fatalf("DuckDB reads:\n%s\nwant:\n%s", got, want)
			}

			// iceberg-go's reader: another implementation, mapping by name.
			arrow, err := tbl.Scan().ToArrowTable(ctx)
			must(err)
			defer arrow.Release()
			if arrow.NumRows() != 6 || arrow.Schema().Field(4).Name != "channel" {
				t.Fatalf("iceberg-go reads %d rows, schema %s", arrow.NumRows(), arrow.Schema())
			}
			nulls := 0
			for _, chunk := range arrow.Column(4).Data().Chunks() {
				nulls += chunk.NullN()
			}
			if nulls != 3 {
				t.Fatalf("iceberg-go reads %d NULL channels, want 3 (the older file's)", nulls)
			}

			snaps := len(tbl.Metadata().Snapshots())
			for _, tc := range []struct{ change, cols, want string }{
				{"drop", "i::BIGINT AS n, i::DOUBLE AS x, i::DECIMAL(18,2) AS amount", "column channel (string) is in the table but no longer in the SQL (dropped or renamed)"},
				{"rename", "i::BIGINT AS n, i::DOUBLE AS x, i::DECIMAL(18,2) AS amount, 'web' AS medium", "column channel (string) is in the table but no longer in the SQL (dropped or renamed)"},
				{"narrow", "i::INTEGER AS n, i::DOUBLE AS x, i::DECIMAL(18,2) AS amount, 'web' AS channel", "column n is long in the table but int in the SQL"},
				{"retype", "i::BIGINT AS n, i::VARCHAR AS x, i::DECIMAL(18,2) AS amount, 'web' AS channel", "column x is double in the table but string in the SQL"},
				{"rescale", "i::BIGINT AS n, i::DOUBLE AS x, i::DECIMAL(18,3) AS amount, 'web' AS channel", "column amount is decimal(18, 2) in the table but decimal(18, 3) in the SQL"},
			} {
				err := write("2024-01-17", tc.cols)
				if !errors.Is(err, lake.ErrSchemaChanged) || !strings.Contains(err.Error(), "gold.sales: "+tc.want) ||
					!strings.Contains(err.Error(), "medallion backfill --rebuild --table gold.sales") {
					t.Fatalf("%s: %v", tc.change, err)
				}
			}
			tbl, err = b.lake.Load(ctx, id)
			must(err)
			if len(tbl.Metadata().Snapshots()) != snaps || len(tbl.Metadata().Schemas()) != 2 {
				t.Fatalf("a refused change committed: %d snapshots (was %d), %d schemas", len(tbl.Metadata().Snapshots()), snaps, len(tbl.Metadata().Schemas()))
			}
		})
	}
}

// queryRows runs q and returns each row's values as DuckDB text, joined
// by spaces.
func queryRows(t *testing.T, c *sql.Conn, q string) []string {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), "SELECT COLUMNS(*)::VARCHAR FROM ("+q+")")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		strs := make([]string, len(vals))
		for i, v := range vals {
			strs[i] = v.String
		}
		out = append(out, strings.Join(strs, " "))
	}
	return out
}
