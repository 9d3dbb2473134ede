package serve_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// metaJava reads the server's catalog through the PostgreSQL JDBC driver's
// DatabaseMetaData, as Metabase and DBeaver do, then runs a prepared
// statement with a parameter.
const metaJava = `
import java.sql.*;

public class Meta {
    public static void main(String[] a) throws Exception {
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://" + a[0] + "/medallion?sslmode=disable", "analyst", "s3cret")) {
            DatabaseMetaData m = c.getMetaData();
            System.out.println("product " + m.getDatabaseProductName());
            StringBuilder sb = new StringBuilder("schemas");
            try (ResultSet r = m.getSchemas()) { while (r.next()) sb.append(" ").append(r.getString("TABLE_SCHEM")); }
            System.out.println(sb);
            sb = new StringBuilder("tables");
            try (ResultSet r = m.getTables(null, "gold", "%", new String[]{"TABLE"})) { while (r.next()) sb.append(" ").append(r.getString("TABLE_NAME")); }
            System.out.println(sb);
            sb = new StringBuilder("columns");
            try (ResultSet r = m.getColumns(null, "gold", "orders_daily", "%")) {
                while (r.next()) sb.append(" ").append(r.getString("COLUMN_NAME")).append(":").append(r.getString("TYPE_NAME"));
            }
            System.out.println(sb);
            sb = new StringBuilder("keys");
            try (ResultSet r = m.getPrimaryKeys(null, "gold", "orders_daily")) { while (r.next()) sb.append(" ").append(r.getString("COLUMN_NAME")); }
            System.out.println(sb);
            try (PreparedStatement p = c.prepareStatement("SELECT count(*) FROM gold.orders_daily WHERE orders >= ?")) {
                p.setLong(1, 1);
                try (ResultSet r = p.executeQuery()) { r.next(); System.out.println("rows " + (r.getLong(1) > 0)); }
            }
        }
    }
}
`

// TestServeJDBC: the PostgreSQL JDBC driver (Debian's
// libpostgresql-jdbc-java) lists schemas, gold tables and a table's
// columns with their types, finds no primary key, and runs a prepared
// statement.
func TestServeJDBC(t *testing.T) {
	const jar = "/usr/share/java/postgresql.jar"
	if _, err := os.Stat(jar); err != nil {
		t.Fatalf("the PostgreSQL JDBC driver (libpostgresql-jdbc-java; .ci/ensure-clients installs it): %v", err)
	}
	addr, _ := start(t, 0)
	src := filepath.Join(t.TempDir(), "Meta.java")
	if err := os.WriteFile(src, []byte(metaJava), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("java", "-cp", jar, src, addr).CombinedOutput()
	if err != nil {
		t.Fatalf("java (a JDK; .ci/ensure-clients installs default-jdk-headless): %v\n%s", err, out)
	}
	want := `product PostgreSQL
schemas gold quarantine silver
tables events_hourly funnel_daily orders_daily restaurants_current revenue_daily signups_daily users_current
columns order_date:date city:text status:text orders:int8 items:int8 gross_amount:numeric
keys
rows true
`
	if got := string(out); got != want {
		t.Errorf("JDBC read:\n%s\nwant:\n%s", got, want)
	}
}
