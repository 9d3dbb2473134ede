package gold_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/internal/laketest"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
)

// TestExportsApplyInCommitOrder: workers export after their commits in
// any order; an export of an older commit never overwrites what a newer
// one exported, per partition, and a table made again starts afresh.
func TestExportsApplyInCommitOrder(t *testing.T) {
	ctx := context.Background()
	db := laketest.New(t).Duck
	conn, err := db.Conn(ctx)
	must(t, err)
	defer conn.Close()
	schema := testenv.RandomName("export_order_")
	exp, err := gold.OpenExporter(ctx, testenv.PostgresURL(), schema)
	must(t, err)
	t.Cleanup(exp.Close)
	pg, err := sql.Open("pgx", testenv.PostgresURL())
	must(t, err)
	t.Cleanup(func() {
		pg.Exec("DROP SCHEMA " + schema + " CASCADE")
		pg.Close()
	})

	current := domains.GoldQuery{GoldTable: config.GoldTable{Table: "users_now", Mode: "current", MergeKeys: []string{"id"}}}
	daily := domains.GoldQuery{GoldTable: config.GoldTable{Table: "daily", Mode: "partition", PartitionColumn: "d", MergeKeys: []string{"d", "k"}}}
	export := func(g domains.GoldQuery, rows string, scope lake.Scope, uuid string, seq int64) {
		t.Helper()
		cols := "id, v"
		if g.Mode == "partition" {
			cols = "d, k, v"
		}
		_, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM (VALUES %s) t(%s)", rows, cols))
		must(t, err)
		_, err = exp.Export(ctx, conn, g, "src", scope, lake.Commit{TableUUID: uuid, Sequence: seq})
		must(t, err)
	}
	read := func(table string) string {
		t.Helper()
		rs, err := pg.QueryContext(ctx, "SELECT t::text FROM "+exp.Table(table)+" t")
		must(t, err)
		defer rs.Close()
		var out []string
		for rs.Next() {
			var s string
			must(t, rs.Scan(&s))
			out = append(out, s)
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	day := func(s string) lake.Scope { return lake.PartitionScope("d", medtype.MustDate(s)) }

	export(current, "(1, 'new')", lake.Scope{}, "u1", 5)
	export(current, "(1, 'old'), (2, 'old')", lake.Scope{}, "u1", 3)
	if got := read("users_now"); got != "(1,new)" {
		t.Fatalf("an older commit's export overwrote a newer one: %s", got)
	}
	export(current, "(1, 'newer'), (2, 'newer')", lake.Scope{}, "u1", 6)
	if got := read("users_now"); got != "(1,newer) (2,newer)" {
		t.Fatalf("a newer commit's export: %s", got)
	}

	export(daily, "(DATE '2024-01-01', 'a', 7)", day("2024-01-01"), "u2", 7)
	export(daily, "(DATE '2024-01-02', 'a', 4)", day("2024-01-02"), "u2", 4) // older, another day: applies
	export(daily, "(DATE '2024-01-01', 'b', 6)", day("2024-01-01"), "u2", 6) // older, same day: skipped
	if got := read("daily"); got != "(2024-01-01,a,7) (2024-01-02,a,4)" {
		t.Fatalf("partition exports out of order: %s", got)
	}
	export(daily, "(DATE '2024-01-01', 'c', 1)", day("2024-01-01"), "u3", 1) // the table was made again
	if got := read("daily"); got != "(2024-01-01,c,1) (2024-01-02,a,4)" {
		t.Fatalf("the export of a table made again: %s", got)
	}
}
