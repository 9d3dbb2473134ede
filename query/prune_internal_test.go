package query

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
)

// TestRanges: the ranges read from statements' parse trees, and every
// form that must prune nothing.
func TestRanges(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(config.Defaults().DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	orders, funnel := lake.TableID{Namespace: "gold", Name: "orders_daily"}, lake.TableID{Namespace: "gold", Name: "funnel_daily"}
	shapes := map[lake.TableID]shape{
		orders: {partition: "order_date", columns: []string{"order_date", "status", "orders"}},
		funnel: {partition: "event_date", columns: []string{"event_date", "step", "users"}},
	}
	const join = "SELECT * FROM gold.orders_daily o JOIN gold.funnel_daily f ON f.event_date = o.order_date "
	for _, c := range []struct{ stmt, want string }{
		{join + "WHERE o.order_date BETWEEN DATE '2024-01-01' AND DATE '2024-01-07' AND o.status = 'x'",
			"gold.funnel_daily 2024-01-01..2024-01-07, gold.orders_daily 2024-01-01..2024-01-07"},
		{"SELECT * FROM gold.orders_daily WHERE order_date = '2024-01-03'", "gold.orders_daily 2024-01-03..2024-01-03"},
		{"FROM gold.orders_daily WHERE order_date > '2024-01-03' AND orders_daily.order_date <= CAST('2024-01-10' AS DATE)", "gold.orders_daily 2024-01-04..2024-01-10"},
		{"SELECT * FROM gold.orders_daily WHERE '2024-01-05' < order_date", "gold.orders_daily 2024-01-06.."},
		{"SELECT * FROM gold.orders_daily WHERE order_date < '2024-01-05'", "gold.orders_daily ..2024-01-04"},
		{"SELECT * FROM gold.orders_daily WHERE order_date IN ('2024-01-09', DATE '2024-01-02')", "gold.orders_daily 2024-01-02..2024-01-09"},
		{"SELECT * FROM gold.orders_daily WHERE order_date > '2024-01-05' AND order_date < '2024-01-03'", "gold.orders_daily 2024-01-06..2024-01-02"},
		{"SELECT * FROM gold.orders_daily o LEFT JOIN gold.funnel_daily f ON f.event_date = o.order_date WHERE f.event_date = '2024-01-02'",
			"gold.funnel_daily 2024-01-02..2024-01-02"},
		{"SELECT o.*, f.users FROM gold.orders_daily o, gold.funnel_daily f WHERE f.event_date = o.order_date AND order_date >= '2024-02-01'",
			"gold.funnel_daily 2024-02-01.., gold.orders_daily 2024-02-01.."},
		// Nothing to prune by.
		{"SELECT * FROM gold.orders_daily WHERE order_date = '2024-01-03' OR status = 'x'", ""},
		{"SELECT * FROM gold.orders_daily WHERE CAST(order_date AS VARCHAR) = '2024-01-03'", ""},
		{"SELECT * FROM gold.orders_daily WHERE order_date = '2024-1-3'", ""},
		{"SELECT * FROM gold.orders_daily WHERE order_date >= TIMESTAMP '2024-01-03 10:00:00'", ""},
		{"SELECT * FROM gold.orders_daily WHERE status = '2024-01-03'", ""},
		{"SELECT * FROM gold.orders_daily WHERE order_date = '2024-01-03' AND orders > (SELECT avg(orders) FROM gold.orders_daily)", ""},
		{"SELECT 'gold.orders_daily' AS t, * FROM gold.orders_daily WHERE order_date = '2024-01-03'", ""},
		{"SELECT * FROM gold.orders_daily o, gold.orders_daily p WHERE o.order_date = '2024-01-03'", ""},
		{"SELECT * FROM gold.orders_daily, (SELECT 1 AS x) s WHERE order_date = '2024-01-03'", ""},
		{"SELECT * FROM (SELECT * FROM gold.orders_daily) WHERE order_date = '2024-01-03'", ""},
		{"SELECT * FROM gold.orders_daily o ASOF JOIN gold.funnel_daily f ON f.event_date <= o.order_date WHERE f.event_date = '2024-01-02'", ""},
		{"SELECT * FROM gold.orders_daily o ANTI JOIN gold.funnel_daily f ON f.event_date = o.order_date WHERE o.order_date = '2024-01-02'", ""},
		{"SELECT * FROM gold.orders_daily WHERE order_date = '2024-01-01' UNION ALL SELECT * FROM gold.orders_daily", ""},
		{"SELECT * FROM gold.orders_daily o LEFT JOIN gold.funnel_daily f ON f.event_date = o.order_date AND f.event_date = '2024-01-02'", ""},
	} {
		sel, _ := oneSelect(parse(ctx, conn, c.stmt))
		got := ranges(c.stmt, sel, shapes)
		var parts []string
		for _, id := range slices.SortedFunc(maps.Keys(got), func(a, b lake.TableID) int { return strings.Compare(a.String(), b.String()) }) {
			r := got[id]
			if r.Column != shapes[id].partition {
				t.Errorf("%s: range of %s on column %q", c.stmt, id, r.Column)
			}
			parts = append(parts, fmt.Sprintf("%s %s..%s", id, orEmpty(r.From.String(), r.From.IsZero()), orEmpty(r.To.String(), r.To.IsZero())))
		}
		if strings.Join(parts, ", ") != c.want {
			t.Errorf("%s\n  ranges %q, want %q", c.stmt, strings.Join(parts, ", "), c.want)
		}
	}
}

func orEmpty(s string, empty bool) string {
	if empty {
		return ""
	}
	return s
}
