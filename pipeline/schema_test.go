package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
)

// TestGoldSchemaEvolves: a deployed gold SQL that adds a column and widens
// another evolves the table in place; the days processed before read the
// new column as NULL until they are backfilled. A SQL that drops a column
// fails its partition, naming the table, the column and the rebuild
// command, and leaves the table as it was; backfill --rebuild then makes a
// new version of the table from every day's bronze, while the snapshot
// before it still reads the old columns.
func TestGoldSchemaEvolves(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			reg, fsys, cfg := paymentsDomain(t)
			e := newEnv(t, backend, reg, []config.Domain{cfg})
			for i, d := range []string{"2024-01-15", "2024-01-16"} {
				writePayments(t, e, d, 4, int64(i*100))
			}
			allDone(t, e.run(t, pipeline.Options{}))
			const q = "SELECT payment_date, method, payments, amount, typeof(amount), coalesce(CAST(top AS VARCHAR), 'NULL') FROM t"

			deploy := func(sql string) {
				t.Helper()
				fsys["gold/payments_daily.sql"] = &fstest.MapFile{Data: []byte(sql)}
				doms, err := reg.BindAll([]config.Domain{cfg})
				must(t, err)
				e.deps.Domains = doms
			}
			deploy(`SELECT payment_date, method, count(*)::BIGINT AS payments,
				sum(amount)::DECIMAL(18, 2) AS amount, max(amount)::DECIMAL(18, 2) AS top FROM silver_payments GROUP BY ALL`)
			writePayments(t, e, "2024-01-17", 4, 200)
			allDone(t, e.run(t, pipeline.Options{}))
			diff(t, "gold.payments_daily after the new SQL", e.rows(t, "gold.payments_daily", q), []string{
				"2024-01-15\tcard\t2\t23.00\tDECIMAL(18,2)\tNULL", "2024-01-15\tcash\t2\t25.00\tDECIMAL(18,2)\tNULL",
				"2024-01-16\tcard\t2\t23.00\tDECIMAL(18,2)\tNULL", "2024-01-16\tcash\t2\t25.00\tDECIMAL(18,2)\tNULL",
				"2024-01-17\tcard\t2\t23.00\tDECIMAL(18,2)\t12.50", "2024-01-17\tcash\t2\t25.00\tDECIMAL(18,2)\t13.50",
			})
			allDone(t, e.run(t, pipeline.Options{Command: "backfill", From: medtype.MustDate("2024-01-15"), To: medtype.MustDate("2024-01-15"), Reprocess: "all"}))
			if got := e.rows(t, "gold.payments_daily", q+" WHERE payment_date = DATE '2024-01-15'"); !strings.HasSuffix(got[0], "\t12.50") {
				t.Fatalf("the backfilled day: %v", got)
			}

			snaps := e.snapshots(t)
			deploy(`SELECT payment_date, method,
				sum(amount)::DECIMAL(18, 2) AS amount, max(amount)::DECIMAL(18, 2) AS top FROM silver_payments GROUP BY ALL`)
			writePayments(t, e, "2024-01-18", 4, 300)
			sum := e.run(t, pipeline.Options{})
			p := e.state(t, "payments", "2024-01-18")
			if sum.Healthy() || p.Status != medtype.StateFailed || !strings.Contains(p.ErrorMessage, "gold.payments_daily: column payments (long) is in the table but no longer in the SQL") ||
				!strings.Contains(p.ErrorMessage, "medallion backfill --rebuild --table gold.payments_daily") {
				t.Fatalf("a dropped column: %s %q", p.Status, p.ErrorMessage)
			}
			if got := e.snapshots(t); got["gold.payments_daily"] != snaps["gold.payments_daily"] {
				t.Fatalf("the refused SQL changed gold.payments_daily")
			}

			// backfill --rebuild: a new table version with the SQL's schema and
			// every day's rows; the old version stays readable as of its snapshot.
			id := lake.TableID{Namespace: "gold", Name: "payments_daily"}
			sum = e.run(t, pipeline.Options{Command: "backfill", Domains: []string{"payments"}, Reprocess: "all", Rebuild: &id})
			allDone(t, sum)
			diff(t, "gold.payments_daily rebuilt", e.rows(t, "gold.payments_daily", "SELECT payment_date, method, amount, top FROM t"), []string{
				"2024-01-15\tcard\t23.00\t12.50", "2024-01-15\tcash\t25.00\t13.50", "2024-01-16\tcard\t23.00\t12.50", "2024-01-16\tcash\t25.00\t13.50",
				"2024-01-17\tcard\t23.00\t12.50", "2024-01-17\tcash\t25.00\t13.50", "2024-01-18\tcard\t23.00\t12.50", "2024-01-18\tcash\t25.00\t13.50",
			})
			ctx := context.Background()
			tbl, err := e.deps.Lake.Load(ctx, id)
			must(t, err)
			if _, ok := tbl.Schema().FindFieldByName("payments"); ok {
				t.Fatalf("the rebuilt table kept the dropped column: %s", tbl.Schema())
			}
			old := lake.Snapshot{ID: snaps["gold.payments_daily"]}
			files, err := e.deps.Lake.Files(ctx, id, nil, old)
			must(t, err)
			paths, err := e.deps.Lake.Fetch(ctx, files, t.TempDir())
			must(t, err)
			conn, err := e.deps.Duck.Conn(ctx)
			must(t, err)
			defer conn.Close()
			rel, err := e.deps.Lake.Relation(ctx, conn, id, old, paths)
			must(t, err)
			if got := queryStrings(t, conn, "SELECT count(*), sum(payments) FROM "+rel); got[0] != "6\t12" {
				t.Fatalf("the version before the rebuild reads %v", got)
			}
		})
	}
}
