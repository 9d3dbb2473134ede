package pipeline_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
)

// TestPostgresExport: the exported tables equal the gold tables row for row
// after a run, a rerun, a backfill and a late-data reprocess.
func TestPostgresExport(t *testing.T) {
	ctx := context.Background()
	cfgs, err := config.BuiltinDomains()
	must(t, err)
	exported := map[string]string{ // gold table -> columns compared
		"orders_daily":  "order_date, city, status, orders, items, gross_amount",
		"users_current": "user_id, email_sha256, city, signup_date, updated_at, is_test_account, year_of_birth",
		"signups_daily": "signup_date, city, signups",
	}
	for i := range cfgs {
		for j := range cfgs[i].Gold {
			if _, ok := exported[cfgs[i].Gold[j].Table]; ok {
				cfgs[i].Gold[j].Export = true
			}
		}
	}
	e := newEnv(t, "sqlite+local", nil, cfgs)
	schema := testenv.RandomName("export_")
	exp, err := gold.OpenExporter(ctx, testenv.PostgresURL(), schema)
	must(t, err)
	t.Cleanup(exp.Close)
	e.deps.Exporter = exp
	pg, err := sql.Open("pgx", testenv.PostgresURL())
	must(t, err)
	t.Cleanup(func() {
		pg.Exec("DROP SCHEMA " + schema + " CASCADE")
		pg.Close()
	})

	check := func(step string) {
		t.Helper()
		for table, cols := range exported {
			want := e.rows(t, "gold."+table, "SELECT "+cols+" FROM t")
			diff(t, step+": "+schema+"."+table, pgRows(t, pg, "SELECT "+textCols(cols)+" FROM "+exp.Table(table)), want)
			if len(want) == 0 {
				t.Fatalf("%s: gold.%s is empty; the comparison proves nothing", step, table)
			}
		}
	}
	msgs, err := generate.Generate(generate.Options{Seed: 21, Start: medtype.MustDate("2024-05-01"), Days: 3, EventsPerDay: 1500,
		Duplicates: 0.02, Malformed: 0.002, Late: 0.02, Domains: []string{"orders", "users"}})
	must(t, err)
	e.write(t, msgs, false)
	allDone(t, e.run(t, pipeline.Options{}))
	check("after the first run")
	allDone(t, e.run(t, pipeline.Options{}))
	check("after a rerun")
	allDone(t, e.run(t, pipeline.Options{Command: "backfill", From: medtype.MustDate("2024-05-01"), To: medtype.MustDate("2024-05-03"), Reprocess: "all"}))
	check("after a backfill")
	e.write(t, msgs, true)
	sum := e.run(t, pipeline.Options{})
	allDone(t, sum)
	if sum.Domains[0].Late+sum.Domains[1].Late == 0 {
		t.Fatal("no late partitions")
	}
	check("after late data")
}

func textCols(cols string) string {
	var out []string
	for _, c := range strings.Split(cols, ", ") {
		out = append(out, c+"::text")
	}
	return strings.Join(out, ", ")
}

func pgRows(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rs, err := db.Query(q)
	must(t, err)
	return scanStrings(t, rs)
}
