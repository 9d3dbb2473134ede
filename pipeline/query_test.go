package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/query"
)

// TestQueryPrunesPartitions: over six processed days, a statement that
// filters on partition columns attaches only the files of the days it
// selects, and returns exactly the rows of the same statement with the
// filter made opaque to pruning ("OR false"), which reads every file.
func TestQueryPrunesPartitions(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, backend, nil, nil)
			msgs, err := generate.Generate(generate.Options{Seed: 11, Start: medtype.MustDate("2024-01-01"), Days: 6, EventsPerDay: 300})
			must(t, err)
			e.write(t, msgs, false)
			allDone(t, e.run(t, pipeline.Options{}))
			s, err := query.Open(ctx, e.deps.Lake, e.deps.Duck, lake.Snapshot{})
			must(t, err)
			defer s.Close()
			for _, c := range []struct {
				where string
				files int // files of gold.orders_daily attached
			}{
				{"o.order_date BETWEEN '2024-01-02' AND '2024-01-03'", 2},
				{"o.order_date > DATE '2024-01-04'", 2},
				{"o.order_date IN ('2024-01-01', '2024-01-06') AND o.status <> 'x'", 6}, // IN reads its span
				{"o.order_date = '2024-01-05' AND f.event_date = '2024-01-05'", 1},
				{"o.order_date < '2024-01-01'", 0},
			} {
				stmt := "SELECT o.order_date, o.status, o.orders, f.step, f.users FROM gold.orders_daily o JOIN gold.funnel_daily f ON f.event_date = o.order_date WHERE "
				pruned := rowsOf(t, s, stmt+c.where+" ORDER BY ALL")
				if n := viewFiles(t, s, "orders_daily"); n != c.files {
					t.Errorf("%s: gold.orders_daily attached with %d files, want %d", c.where, n, c.files)
				}
				if f := viewFiles(t, s, "funnel_daily"); f != c.files {
					t.Errorf("%s: gold.funnel_daily attached with %d files, want %d (through the join)", c.where, f, c.files)
				}
				whole := rowsOf(t, s, stmt+"("+c.where+") OR false ORDER BY ALL")
				if viewFiles(t, s, "orders_daily") != 6 {
					t.Fatalf("%s OR false pruned", c.where)
				}
				if pruned != whole || (c.files > 0 && pruned == "") {
					t.Errorf("%s: pruned rows differ from the whole table's:\n%s\n---\n%s", c.where, pruned, whole)
				}
			}
		})
	}
}

func rowsOf(t *testing.T, s *query.Session, stmt string) string {
	t.Helper()
	rows, err := s.Query(context.Background(), stmt)
	must(t, err)
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var a, b2, c, d, e any
		must(t, rows.Scan(&a, &b2, &c, &d, &e))
		fmt.Fprintln(&b, a, b2, c, d, e)
	}
	must(t, rows.Err())
	return b.String()
}

// viewFiles counts the data files a table's view in the session reads.
func viewFiles(t *testing.T, s *query.Session, table string) int {
	t.Helper()
	var sqlText string
	must(t, s.Conn().QueryRowContext(context.Background(), "SELECT sql FROM duckdb_views() WHERE schema_name = 'gold' AND view_name = ?", table).Scan(&sqlText))
	return strings.Count(sqlText, ".parquet")
}
