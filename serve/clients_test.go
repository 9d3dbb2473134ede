package serve_test

import (
	"net"
	"os/exec"
	"testing"
)

// inspectPy reads the server's catalog as Superset does, through
// SQLAlchemy's PostgreSQL dialect on psycopg2, then runs a query with a
// bound parameter.
const inspectPy = `
import sys
from sqlalchemy import create_engine, inspect, text
eng = create_engine("postgresql+psycopg2://analyst:s3cret@%s:%s/medallion?sslmode=disable" % (sys.argv[1], sys.argv[2]))
insp = inspect(eng)
print("schemas", insp.get_schema_names())
print("gold", insp.get_table_names(schema="gold"))
print("columns", [(c["name"], str(c["type"])) for c in insp.get_columns("orders_daily", schema="gold")])
print("pk", insp.get_pk_constraint("orders_daily", schema="gold")["constrained_columns"])
print("fks", insp.get_foreign_keys("orders_daily", schema="gold"))
print("indexes", insp.get_indexes("orders_daily", schema="gold"))
print("comment", insp.get_table_comment("orders_daily", schema="gold")["text"])
with eng.connect() as c:
    n = c.execute(text("SELECT count(*) FROM gold.orders_daily WHERE orders >= :n"), {"n": 1}).scalar()
    print("rows", n > 0)
`

// TestServeSQLAlchemy: SQLAlchemy's inspector (Superset's schema browser)
// lists the schemas, the gold tables and a table's columns with their
// types, finds no keys, indexes or comments, and runs a query.
func TestServeSQLAlchemy(t *testing.T) {
	addr, _ := start(t, 0)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("/usr/bin/python3", "-c", inspectPy, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("SQLAlchemy (python3-sqlalchemy and python3-psycopg2; .ci/ensure-clients installs them): %v\n%s", err, out)
	}
	want := `schemas ['gold', 'quarantine', 'silver']
gold ['events_hourly', 'funnel_daily', 'orders_daily', 'restaurants_current', 'revenue_daily', 'signups_daily', 'users_current']
columns [('order_date', 'DATE'), ('city', 'TEXT'), ('status', 'TEXT'), ('orders', 'BIGINT'), ('items', 'BIGINT'), ('gross_amount', 'NUMERIC(14, 2)')]
pk []
fks []
indexes []
comment None
rows True
`
	if got := string(out); got != want {
		t.Errorf("SQLAlchemy read:\n%s\nwant:\n%s", got, want)
	}
}
