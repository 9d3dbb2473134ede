package query_test

import (
	"fmt"
	"testing"

	"github.com/medallionlake/medallion/query"
)

func TestTablesIn(t *testing.T) {
	got := query.TablesIn(`SELECT * FROM gold.orders_daily o JOIN SILVER.orders s USING (order_id)
		WHERE o.city IN (SELECT city FROM gold."orders_daily") AND main.x = 1 AND quarantine . users IS NOT NULL`)
	if fmt.Sprint(got) != "[gold.orders_daily silver.orders quarantine.users]" {
		t.Fatalf("TablesIn = %v", got)
	}
	if got := query.TablesIn("SELECT 1"); len(got) != 0 {
		t.Fatalf("TablesIn without tables = %v", got)
	}
}
