package cli_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

func TestDemoThenQuery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	r := run(t, "demo", "--dir", dir, "--days", "2", "--events-per-day", "600")
	if r.code != cli.ExitOK {
		t.Fatalf("demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	out := squash(r.stdout)
	for _, want := range []string{"== 2. medallion run ==", "TOTAL 8 8 0 0 8 8 0 0", "Late files arrive", "Funnel on", "1 app_open",
		"Orders by latest status", "Quarantined rows by reason", "TOTAL 0 0 8 0 0 0 0 0 0 8"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// The second run reprocessed LATE partitions.
	i := strings.Index(out, "Late files arrive")
	if i < 0 || !strings.Contains(out[i:], "TOTAL 8 0 ") || strings.Contains(out[i:strings.Index(out, "== 4.")], "TOTAL 8 0 0 0") {
		t.Errorf("the late run marked nothing LATE:\n%s", r.stdout)
	}
	cfg := filepath.Join(dir, "medallion.yaml")

	// query: JSON parses and matches the CSV; both agree with status counts.
	r = run(t, "query", "--config", cfg, "--format", "json", "SELECT status, sum(orders) AS orders FROM gold.orders_daily GROUP BY status ORDER BY status")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || r.code != cli.ExitOK || len(rows) == 0 {
		t.Fatalf("query json: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	r = run(t, "query", "--config", cfg, "--format", "csv", "SELECT status, sum(orders) AS orders FROM gold.orders_daily GROUP BY status ORDER BY status")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(recs) != len(rows)+1 || strings.Join(recs[0], ",") != "status,orders" {
		t.Fatalf("query csv: %v\n%s", err, r.stdout)
	}
	for i, row := range rows {
		if recs[i+1][0] != row["status"] || recs[i+1][1] != strconv.FormatFloat(row["orders"].(float64), 'f', -1, 64) {
			t.Fatalf("csv row %v differs from json row %v", recs[i+1], row)
		}
	}
	out2 := filepath.Join(t.TempDir(), "silver.parquet")
	r = run(t, "query", "--config", cfg, "--format", "parquet", "--out", out2, "SELECT * FROM silver.events")
	if st, err := os.Stat(out2); r.code != cli.ExitOK || err != nil || st.Size() == 0 {
		t.Fatalf("query parquet: exit %d %v %s", r.code, err, r.stderr)
	}
	for _, bad := range []struct{ sql, want string }{
		{"SELECT nope FROM gold.orders_daily", `Referenced column "nope" not found`},
		{"SELEKT 1", "syntax error"},
		{"SELECT * FROM gold.no_such_table", "table gold.no_such_table does not exist"},
	} {
		r = run(t, "query", "--config", cfg, bad.sql)
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("%q: exit %d stderr %q, want 1 and %q", bad.sql, r.code, r.stderr, bad.want)
		}
	}

	// A second demo replaces its own folder; a foreign folder is refused.
	if r = run(t, "demo", "--dir", dir, "--days", "1", "--events-per-day", "200"); r.code != cli.ExitOK {
		t.Fatalf("second demo: exit %d %s", r.code, r.stderr)
	}
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = run(t, "demo", "--dir", foreign); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "is not a demo folder") {
		t.Fatalf("demo into a foreign folder: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(foreign, "precious.txt")); err != nil {
		t.Fatal("demo deleted a file it did not create")
	}
}

// The same seed and options give the same bronze, byte for byte.
func TestGenerateIsDeterministic(t *testing.T) {
	listing := func() string {
		cfg := project(t, "sqlite://./medallion.db")
		r := run(t, "generate", "--config", cfg, "--start", "2024-01-15", "--days", "2", "--events-per-day", "300", "--seed", "9")
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "bronze files") {
			t.Fatalf("generate: exit %d %s %s", r.code, r.stdout, r.stderr)
		}
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := filesystem.New(filesystem.Config{Root: c.Storage.URL})
		objs, err := storage.ListAll(context.Background(), b, "bronze/")
		if err != nil || len(objs) == 0 {
			t.Fatalf("no bronze: %v", err)
		}
		var lines []string
		for _, o := range objs {
			data, _ := storage.ReadAll(context.Background(), b, o.Key)
			lines = append(lines, o.Key+" "+strconv.Itoa(len(data))+" "+strconv.Itoa(int(crc(data))))
		}
		return strings.Join(lines, "\n")
	}
	a, b := listing(), listing()
	if a != b {
		t.Fatalf("same seed, different bronze:\n%s\n---\n%s", a, b)
	}
	if r := run(t, "generate", "--to", "pigeon"); r.code != cli.ExitUsage {
		t.Fatalf("generate --to pigeon: exit %d", r.code)
	}
}

func crc(b []byte) uint32 {
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// After a reprocess, --as-of reads the rows as they were before it.
func TestQueryAsOfAfterReprocess(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	seed(t, cfg)
	if r := run(t, "run", "--config", cfg); r.code != cli.ExitOK {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	count := func(args ...string) string {
		t.Helper()
		r := run(t, append([]string{"query", "--config", cfg, "--format", "csv"}, args...)...)
		if r.code != cli.ExitOK {
			t.Fatalf("query %v: exit %d %s", args, r.code, r.stderr)
		}
		return strings.TrimSpace(strings.Split(r.stdout, "\n")[1])
	}
	before := count("SELECT count(*) FROM silver.events WHERE event_date = DATE '2024-01-15'")
	r := run(t, "status", "--config", cfg, "--domain", "events", "--date", "2024-01-15", "--format", "json")
	var p struct {
		Snapshots map[string]int64 `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.Snapshots["silver.events"] == 0 {
		t.Fatalf("status json: %v %s", err, r.stdout)
	}
	cutoff := time.Now().UTC().Format(time.RFC3339Nano)

	// New data for the same day: the partition goes LATE and is reprocessed.
	if r := run(t, "generate", "--config", cfg, "--start", "2024-01-15", "--days", "1", "--events-per-day", "150", "--seed", "77", "--domain", "events", "--late", "0"); r.code != cli.ExitOK {
		t.Fatalf("generate: %s", r.stderr)
	}
	if r := run(t, "run", "--config", cfg); r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "events 2 0 1") {
		t.Fatalf("late run: %d\n%s", r.code, r.stdout)
	}
	after := count("SELECT count(*) FROM silver.events WHERE event_date = DATE '2024-01-15'")
	if after == before {
		t.Fatalf("the reprocess did not change the partition (%s rows)", after)
	}
	if got := count("--as-of", strconv.FormatInt(p.Snapshots["silver.events"], 10), "SELECT count(*) FROM silver.events WHERE event_date = DATE '2024-01-15'"); got != before {
		t.Fatalf("as of snapshot %d: %s rows, want %s", p.Snapshots["silver.events"], got, before)
	}
	if got := count("--as-of", cutoff, "SELECT count(*) FROM silver.events WHERE event_date = DATE '2024-01-15'"); got != before {
		t.Fatalf("as of %s: %s rows, want %s", cutoff, got, before)
	}
	if r := run(t, "query", "--config", cfg, "--as-of", "42", "SELECT 1 FROM silver.events, gold.funnel_daily"); r.code != cli.ExitUsage {
		t.Fatalf("snapshot id with two tables: exit %d", r.code)
	}
}

func TestQueryPromptAndStdin(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	seed(t, cfg)
	if r := run(t, "run", "--config", cfg); r.code != cli.ExitOK {
		t.Fatalf("run: %s", r.stderr)
	}
	var out, errb bytes.Buffer
	in := strings.NewReader("SELECT count(*) AS n\nFROM gold.orders_daily;\n\\d\nSELECT nope FROM gold.orders_daily;\n" +
		"SELECT * FROM read_csv('/etc/passwd');\nCREATE TABLE t AS SELECT 1;\nSELECT 1 + 1 AS two;\n\\q\n")
	code := cli.MainWithInput([]string{"query", "--config", cfg, "--interactive"}, in, &out, &errb)
	s := squash(out.String())
	if code != cli.ExitOK || !strings.Contains(s, "(1 rows)") || !strings.Contains(s, "gold.orders_daily\n") ||
		!strings.Contains(s, `error: Binder Error: Referenced column "nope" not found`) || !strings.Contains(s, "two\n2\n") ||
		strings.Count(s, "error: blocked:") != 2 {
		t.Fatalf("prompt: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	out.Reset()
	code = cli.MainWithInput([]string{"query", "--config", cfg, "--format", "csv"}, strings.NewReader("SELECT 42 AS answer\n"), &out, &errb)
	if code != cli.ExitOK || out.String() != "answer\n42\n" {
		t.Fatalf("stdin statement: exit %d %q", code, out.String())
	}
}
