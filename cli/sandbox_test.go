package cli_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/query/querytest"
)

// TestQuerySandbox: medallion query runs only read-only statements over
// the lake's tables. Every escape (reading any file, including the lake's
// own bronze and warehouse files, writing one, attaching a database,
// installing or loading an extension, loosening a setting, creating
// objects, smuggling a second statement) fails with exit 1 and says it is
// blocked, and leaves no file behind; --allow-files opens one folder and
// only that one.
func TestQuerySandbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if r := run(t, "demo", "--dir", dir, "--days", "1", "--events-per-day", "200"); r.code != cli.ExitOK {
		t.Fatalf("demo: exit %d\n%s", r.code, r.stderr)
	}
	cfg := filepath.Join(dir, "medallion.yaml")
	lakeDir := filepath.Join(dir, "lakehouse")
	if _, err := os.Stat(filepath.Join(lakeDir, "bronze")); err != nil {
		t.Fatalf("the demo's lake is not where the test looks: %v", err)
	}
	meta, _ := filepath.Glob(filepath.Join(lakeDir, "warehouse/gold/orders_daily/metadata/*.metadata.json"))
	if len(meta) == 0 {
		t.Fatal("no metadata file for gold.orders_daily")
	}
	out := t.TempDir()
	target := filepath.Join(out, "x")
	for _, stmt := range querytest.Escapes(lakeDir, meta[0], target) {
		r := run(t, "query", "--config", cfg, stmt)
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "blocked") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and blocked", stmt, r.code, r.stderr)
		}
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Fatalf("blocked statements wrote %v", left)
	}
	if r := run(t, "query", "--config", cfg, "SELEKT 1"); r.code != cli.ExitFailed || !strings.Contains(r.stderr, "syntax error") {
		t.Errorf("a bad statement: exit %d %q, want 1", r.code, r.stderr)
	}
	for _, stmt := range []string{"DESCRIBE gold.orders_daily", "SUMMARIZE gold.orders_daily", "EXPLAIN SELECT * FROM gold.orders_daily",
		"SHOW TABLES", "SELECT count(*) FROM gold.orders_daily"} {
		if r := run(t, "query", "--config", cfg, stmt); r.code != cli.ExitOK {
			t.Errorf("%s: exit %d %s", stmt, r.code, r.stderr)
		}
	}

	// Arrow: the stream a Go Arrow reader reads has the table's rows.
	r := run(t, "query", "--config", cfg, "--format", "arrow", "SELECT order_date, status, orders FROM gold.orders_daily")
	reader, err := ipc.NewReader(strings.NewReader(r.stdout))
	if r.code != cli.ExitOK || err != nil {
		t.Fatalf("arrow: exit %d %v %s", r.code, err, r.stderr)
	}
	var arrowRows int64
	for reader.Next() {
		arrowRows += reader.RecordBatch().NumRows()
	}
	reader.Release()
	count := run(t, "query", "--config", cfg, "--format", "csv", "SELECT count(*) AS n FROM gold.orders_daily")
	if want := "n\n" + strconv.FormatInt(arrowRows, 10) + "\n"; arrowRows == 0 || count.stdout != want {
		t.Fatalf("arrow stream of %d rows, the table has %q", arrowRows, count.stdout)
	}

	// --allow-files: that folder reads and writes, nothing else does.
	r = run(t, "query", "--config", cfg, "--allow-files", out, "COPY (SELECT sum(orders) AS n FROM gold.orders_daily) TO '"+out+"/n.csv'")
	if r.code != cli.ExitOK {
		t.Fatalf("COPY into the allowed folder: exit %d %s", r.code, r.stderr)
	}
	r = run(t, "query", "--config", cfg, "--allow-files", out, "--format", "csv", "SELECT n FROM read_csv('"+out+"/n.csv')")
	want := run(t, "query", "--config", cfg, "--format", "csv", "SELECT sum(orders) AS n FROM gold.orders_daily")
	if r.code != cli.ExitOK || r.stdout != want.stdout || !strings.HasPrefix(r.stdout, "n\n") {
		t.Fatalf("reading back from the allowed folder: exit %d %q, want %q (%s)", r.code, r.stdout, want.stdout, r.stderr)
	}
	other := t.TempDir()
	for _, stmt := range []string{"COPY (SELECT 1) TO '" + other + "/y.csv'", "SELECT * FROM read_csv('/etc/passwd')",
		"SELECT count(*) FROM read_parquet('" + lakeDir + "/bronze/**/*.parquet')", "SET allowed_directories = ['/']"} {
		if r := run(t, "query", "--config", cfg, "--allow-files", out, stmt); r.code != cli.ExitFailed || !strings.Contains(r.stderr, "blocked") {
			t.Errorf("with --allow-files, %s: exit %d %q", stmt, r.code, r.stderr)
		}
	}
	if left, _ := os.ReadDir(other); len(left) > 0 {
		t.Fatalf("a statement wrote outside the allowed folder: %v", left)
	}
}
