package serve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/config"
	_ "github.com/medallionlake/medallion/domains/all"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/query"
	"github.com/medallionlake/medallion/query/querytest"
	"github.com/medallionlake/medallion/serve"
	"github.com/medallionlake/medallion/storage/client"
)

// start builds the demo's lake (one day) and serves it on a free loopback
// port to analyst (password "s3cret") and viewer (a SCRAM verifier of
// "v1ew"); it returns the address and the demo's config file.
func start(t *testing.T, timeout time.Duration) (string, string) {
	s := startWith(t, 1, func(c *serve.Config) { c.StatementTimeout = timeout }, "127.0.0.1:0")
	return s.addr, s.config
}

// served is a server a test started.
type served struct {
	addr, config string
	srv          *serve.Server
	db           *duck.DB
}

// startWith is start with days of data, the server's config changed by
// edit, listening on listen.
func startWith(t *testing.T, days int, edit func(*serve.Config), listen string) *served {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "demo")
	var out strings.Builder
	if code := cli.Main([]string{"demo", "--dir", dir, "--days", strconv.Itoa(days), "--events-per-day", "200"}, &out, &out); code != cli.ExitOK {
		t.Fatalf("demo: exit %d\n%s", code, out.String())
	}
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := meta.Open(ctx, cfg.Meta.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	bucket, err := client.Open(ctx, cfg.Storage)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lake.Open(ctx, store, bucket, cfg.Storage.S3)
	if err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(cfg.DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sc := serve.Config{
		Users: map[string]string{"analyst": "s3cret", "viewer": viewerVerifier},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&sc)
	}
	srv, err := serve.New(ctx, l, db, sc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &served{addr: ln.Addr().String(), config: filepath.Join(dir, "medallion.yaml"), srv: srv, db: db}
}

// viewerVerifier is PostgreSQL's own verifier of the password "v1ew"
// (SELECT rolpassword after SET password_encryption = 'scram-sha-256').
const viewerVerifier = "SCRAM-SHA-256$4096:gXb8QtvWzkmIUMw9Wx+QFQ==$" +
	"9LK+R9gOyLsK/kWGlh0RqQ4+WURWkjjt560rbgVKiHw=:Yf/Ud+Ifku8uHDKdg95kLwceul1k+CGTHm5oi4nvud8="

// dial connects as user, with sslmode.
func dial(addr, user, password, sslmode string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, "postgres://"+user+":"+password+"@"+addr+"/medallion?sslmode="+sslmode)
}

// connect connects as user without TLS.
func connect(addr, user, password string) (*pgx.Conn, error) {
	return dial(addr, user, password, "disable")
}

// analyst connects as analyst; the connection closes when the test ends.
func analyst(t *testing.T, addr string) *pgx.Conn {
	t.Helper()
	c, err := connect(addr, "analyst", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestServePgx: pgx authenticates with SCRAM-SHA-256, runs statements
// through the extended protocol (with parameters) and the simple one, and
// reads every listed type; a wrong password and every escape are refused.
func TestServePgx(t *testing.T) {
	addr, cfgPath := start(t, 0)
	ctx := context.Background()
	if _, err := connect(addr, "analyst", "wrong"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("a wrong password: %v", err)
	}
	// An unknown user goes through the whole exchange and is refused as a
	// wrong password is.
	if _, err := connect(addr, "nobody", "s3cret"); pgCode(err) != "28P01" || !strings.Contains(err.Error(), `password authentication failed for user "nobody"`) {
		t.Fatalf("an unknown user: %v", err)
	}
	viewer, err := connect(addr, "viewer", "v1ew")
	if err != nil {
		t.Fatalf("a user configured with PostgreSQL's SCRAM verifier: %v", err)
	}
	viewer.Close(ctx)
	conn := analyst(t, addr)

	var total, above int64
	if err := conn.QueryRow(ctx, "SELECT sum(orders) FROM gold.orders_daily").Scan(&total); err != nil || total == 0 {
		t.Fatalf("sum of orders: %d %v", total, err)
	}
	var none int64
	q := "SELECT coalesce(sum(orders), 0) FROM gold.orders_daily WHERE orders >= $1 AND status <> $2"
	if err := conn.QueryRow(ctx, q, 1, "no such status").Scan(&above); err != nil || above != total {
		t.Fatalf("with parameters: %d of %d, %v", above, total, err)
	}
	if err := conn.QueryRow(ctx, q, 1_000_000, "no such status").Scan(&none); err != nil || none != 0 {
		t.Fatalf("with parameters that select nothing: %d, %v", none, err)
	}
	var simple int64
	if err := conn.QueryRow(ctx, "SELECT sum(orders) FROM gold.orders_daily", pgx.QueryExecModeSimpleProtocol).Scan(&simple); err != nil || simple != total {
		t.Fatalf("simple protocol: %d, want %d (%v)", simple, total, err)
	}

	var (
		b     bool
		i2    int16
		i4    int32
		i8    int64
		f4    float32
		f8    float64
		num   pgtype.Numeric
		text  string
		date  time.Time
		ts    time.Time
		tstz  time.Time
		iv    pgtype.Interval
		id    pgtype.UUID
		bytes []byte
	)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		err = conn.QueryRow(ctx, `SELECT true, 2::SMALLINT, 4::INTEGER, 8::BIGINT, 1.5::FLOAT, 2.25::DOUBLE, 1234.56::DECIMAL(12,2), 'héllo',
			DATE '2024-01-15', TIMESTAMP '2024-01-15 06:30:00.123456', TIMESTAMPTZ '2024-01-15 06:30:00+00', INTERVAL 90 MINUTE,
			'5b6b0a3c-8d4e-4b7a-9f1e-2c3d4e5f6a7b'::UUID, '\x01\x02'::BLOB`, mode).
			Scan(&b, &i2, &i4, &i8, &f4, &f8, &num, &text, &date, &ts, &tstz, &iv, &id, &bytes)
		if err != nil {
			t.Fatalf("types (mode %v): %v", mode, err)
		}
		if !b || i2 != 2 || i4 != 4 || i8 != 8 || f4 != 1.5 || f8 != 2.25 || num.Int.Cmp(big.NewInt(123456)) != 0 || num.Exp != -2 || text != "héllo" ||
			!date.Equal(time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)) || !ts.Equal(time.Date(2024, 1, 15, 6, 30, 0, 123456000, time.UTC)) ||
			!tstz.Equal(time.Date(2024, 1, 15, 6, 30, 0, 0, time.UTC)) || iv.Microseconds != 90*60*1e6 ||
			id.Bytes[0] != 0x5b || id.Bytes[15] != 0x7b || string(bytes) != "\x01\x02" {
			t.Fatalf("types (mode %v): %v %v %v %v %v %v %v/%v %q %v %v %v %+v %x %x", mode, b, i2, i4, i8, f4, f8, num.Int, num.Exp, text, date, ts, tstz, iv, id.Bytes, bytes)
		}
	}

	// json and arrays: the OIDs, and values pgx decodes as those types.
	const arrays = `SELECT '{"a": 1, "b": [true]}'::JSON, [1, 2, NULL]::INTEGER[], ['x', 'y'], [1.5::DECIMAL(4,2)],
		[DATE '2024-01-15'], [[1], [2, 3]]`
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		rows, err := conn.Query(ctx, arrays, mode)
		if err != nil {
			t.Fatal(err)
		}
		var oids []uint32
		for _, f := range rows.FieldDescriptions() {
			oids = append(oids, f.DataTypeOID)
		}
		want := []uint32{pgtype.JSONOID, pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.NumericArrayOID, pgtype.DateArrayOID, pgtype.TextOID}
		if fmt.Sprint(oids) != fmt.Sprint(want) {
			t.Errorf("OIDs (mode %v): %v, want %v", mode, oids, want)
		}
		var (
			doc    map[string]any
			ints   []*int32
			texts  []string
			nums   []pgtype.Numeric
			dates  []time.Time
			nested string
		)
		if !rows.Next() {
			t.Fatalf("mode %v: %v", mode, rows.Err())
		}
		if err := rows.Scan(&doc, &ints, &texts, &nums, &dates, &nested); err != nil {
			t.Fatalf("json and arrays (mode %v): %v", mode, err)
		}
		rows.Close()
		if doc["a"] != float64(1) || len(ints) != 3 || *ints[1] != 2 || ints[2] != nil || strings.Join(texts, ",") != "x,y" ||
			len(nums) != 1 || nums[0].Int.Int64() != 150 || nums[0].Exp != -2 || len(dates) != 1 || !dates[0].Equal(time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)) ||
			nested != "[[1],[2,3]]" {
			t.Errorf("json and arrays (mode %v): %v %v %v %v %v %q", mode, doc, ints, texts, nums, dates, nested)
		}
	}

	// Every escape of the query sandbox is refused here too, through both
	// protocols, and writes nothing.
	lakeDir := filepath.Join(filepath.Dir(cfgPath), "lakehouse")
	meta, _ := filepath.Glob(filepath.Join(lakeDir, "warehouse/gold/orders_daily/metadata/*.metadata.json"))
	if len(meta) == 0 {
		t.Fatal("no metadata file for gold.orders_daily")
	}
	out := t.TempDir()
	for _, stmt := range querytest.Escapes(lakeDir, meta[0], filepath.Join(out, "x")) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			_, err := conn.Exec(ctx, stmt, mode)
			if strings.HasPrefix(stmt, "SET ") || strings.HasPrefix(stmt, "RESET ") {
				// Acknowledged without effect, as every SET is (clients send
				// their own on connecting): the next statements stay refused.
				if err != nil {
					t.Errorf("%s (mode %v): %v", stmt, mode, err)
				}
				continue
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "blocked") {
				t.Errorf("%s (mode %v): %v", stmt, mode, err)
			}
		}
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Fatalf("refused statements wrote %v", left)
	}
	if _, err := conn.Exec(ctx, "SELECT * FROM read_csv('/etc/passwd')"); pgCode(err) != "42501" {
		t.Errorf("after the SETs: %v", err)
	}
	// The connection still works after refusals.
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&i8); err != nil || i8 == 0 {
		t.Fatalf("after refusals: %d %v", i8, err)
	}
}

// TestServePsql: the real psql client connects with SCRAM and runs a
// query.
func TestServePsql(t *testing.T) {
	addr, _ := start(t, 0)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("psql", "-X", "-At", "-h", host, "-p", port, "-U", "analyst", "-d", "medallion",
		"-c", "SELECT status, sum(orders) FROM gold.orders_daily GROUP BY status ORDER BY status")
	cmd.Env = append(os.Environ(), "PGPASSWORD=s3cret", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "|") {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	cmd = exec.Command("psql", "-X", "-At", "-h", host, "-p", port, "-U", "analyst", "-d", "medallion", "-c", "SELECT 1")
	cmd.Env = append(os.Environ(), "PGPASSWORD=wrong", "PGSSLMODE=disable")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "password authentication failed") {
		t.Fatalf("psql with a wrong password: %v\n%s", err, out)
	}
}

// TestConfigErrors: no user, or a malformed verifier, stops the server
// before it starts, naming the user.
func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := serve.New(ctx, nil, nil, serve.Config{}); err == nil || !strings.Contains(err.Error(), "serve.users is empty") {
		t.Fatalf("no users: %v", err)
	}
	for _, v := range []string{"SCRAM-SHA-256$4096:c2FsdA==", "SCRAM-SHA-256$x:c2FsdA==$a2V5:a2V5", "SCRAM-SHA-256$4096:%%%$a2V5:a2V5"} {
		if _, err := serve.New(ctx, nil, nil, serve.Config{Users: map[string]string{"viewer": v}}); err == nil || !strings.Contains(err.Error(), "serve.users viewer: not a SCRAM-SHA-256 verifier") {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// TestServeSeesNewCommits: a run that commits a new day between two
// statements of one connection is visible to the second, without a
// restart or a reconnect.
func TestServeSeesNewCommits(t *testing.T) {
	addr, cfg := start(t, 0)
	ctx := context.Background()
	conn := analyst(t, addr)
	const q = "SELECT count(DISTINCT order_date), count(*) FILTER (WHERE order_date = DATE '2020-01-01') FROM gold.orders_daily"
	var days, newDay int64
	if err := conn.QueryRow(ctx, q).Scan(&days, &newDay); err != nil || days == 0 || newDay != 0 {
		t.Fatalf("before: %d days, %d rows of 2020-01-01, %v", days, newDay, err)
	}
	var out strings.Builder
	for _, args := range [][]string{{"generate", "--config", cfg, "--start", "2020-01-01", "--days", "1", "--events-per-day", "200", "--late", "0"}, {"run", "--config", cfg}} {
		if code := cli.Main(args, &out, &out); code != cli.ExitOK {
			t.Fatalf("%s: exit %d\n%s", args[0], code, out.String())
		}
	}
	var after, added int64
	if err := conn.QueryRow(ctx, q).Scan(&after, &added); err != nil || after != days+1 || added == 0 {
		t.Fatalf("after a run: %d days (was %d), %d rows of 2020-01-01, %v", after, days, added, err)
	}
}

// TestServeStatementTimeout: a statement running past the timeout is
// cancelled with SQLSTATE 57014, and the connection goes on.
func TestServeStatementTimeout(t *testing.T) {
	addr, _ := start(t, 300*time.Millisecond)
	ctx := context.Background()
	conn := analyst(t, addr)
	began := time.Now()
	var n int64
	err := conn.QueryRow(ctx, "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3").Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "statement timeout") {
		t.Fatalf("a long statement: %v (after %s)", err, time.Since(began))
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Fatalf("cancelled only after %s", took)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&n); err != nil || n == 0 {
		t.Fatalf("after the timeout: %d %v", n, err)
	}
}

// TestServeSessionsAreIsolated: two connections filtering one table on
// different days each read their own day, however their statements
// interleave (each session's views live in its own catalog).
func TestServeSessionsAreIsolated(t *testing.T) {
	addr := startWith(t, 2, nil, "127.0.0.1:0").addr
	ctx := context.Background()
	var conns [2]*pgx.Conn
	for i := range conns {
		c := analyst(t, addr)
		conns[i] = c
	}
	var days []time.Time
	rows, err := conns[0].Query(ctx, "SELECT DISTINCT order_date FROM gold.orders_daily ORDER BY 1")
	if err == nil {
		days, err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
	}
	if err != nil || len(days) != 2 {
		t.Fatalf("days: %v %v", days, err)
	}
	// Constant dates, so that each statement prunes its view to one day.
	const q = "SELECT count(*), min(order_date) FROM gold.orders_daily WHERE order_date = DATE '%s'"
	want := make([]int64, 2)
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			var n int64
			var day time.Time
			if err := c.QueryRow(ctx, fmt.Sprintf(q, days[i].Format(time.DateOnly))).Scan(&n, &day); err != nil || n == 0 || !day.Equal(days[i]) {
				t.Fatalf("round %d, connection %d: %d rows of %v, want %v (%v)", round, i, n, day, days[i], err)
			}
			if round > 0 && n != want[i] {
				t.Fatalf("round %d, connection %d: %d rows, then %d", round, i, want[i], n)
			}
			want[i] = n
		}
	}
}

// psql runs psql's commands against the server as analyst and returns
// its unaligned output.
func psql(t *testing.T, addr string, commands ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "analyst", "-d", "medallion"}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	cmd := exec.Command("psql", args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD=s3cret", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %v: %v\n%s", commands, err, out)
	}
	return string(out)
}

// TestServeCatalog: psql's \dn, \dt, \d and \l, and the information_schema
// listings BI tools run, describe the lake's tables, with the columns and
// types a query of the table returns.
func TestServeCatalog(t *testing.T) {
	addr, _ := start(t, 0)
	if out := psql(t, addr, `\dn`); out != "gold|medallion\nquarantine|medallion\nsilver|medallion\n" {
		t.Errorf(`\dn: %q`, out)
	}
	out := psql(t, addr, `\dt gold.*`)
	if !strings.Contains(out, "gold|orders_daily|table|medallion\n") || strings.Contains(out, "silver|") || strings.Count(out, "\n") != 7 {
		t.Errorf(`\dt gold.*: %q`, out)
	}
	if out := psql(t, addr, `\dt`); strings.Count(out, "|table|") != 17 {
		t.Errorf(`\dt: %q`, out)
	}
	want := "order_date|date|||\ncity|text|||\nstatus|text|||\norders|bigint|||\nitems|bigint|||\ngross_amount|numeric(14,2)|||\n"
	if out := psql(t, addr, `\d gold.orders_daily`); out != want {
		t.Errorf(`\d gold.orders_daily: %q, want %q`, out, want)
	}
	if out := psql(t, addr, `\l`); !strings.HasPrefix(out, "medallion|medallion|UTF8|") {
		t.Errorf(`\l: %q`, out)
	}

	ctx := context.Background()
	conn := analyst(t, addr)
	rows, err := conn.Query(ctx, "SELECT * FROM gold.orders_daily LIMIT 0")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, f := range rows.FieldDescriptions() {
		fields = append(fields, f.Name)
	}
	rows.Close()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, mode, "gold", "orders_daily")
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || strings.Join(cols, ",") != strings.Join(fields, ",") {
			t.Errorf("information_schema.columns (mode %v): %v, want %v (%v)", mode, cols, fields, err)
		}
		var tables int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'", mode).Scan(&tables); err != nil || tables != 17 {
			t.Errorf("information_schema.tables (mode %v): %d %v", mode, tables, err)
		}
	}
	// The catalog is no way around the sandbox.
	_, err = conn.Exec(ctx, "SELECT * FROM pg_catalog.pg_class, read_csv('/etc/passwd')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("a catalog query reading a file: %v", err)
	}
}

// TestServeEvictsStagedFiles: files a statement staged are removed once no
// table's current snapshot reads them (here, after a forced backfill
// rewrote the orders partition), while the files still live stay, and
// queries go on with the same rows.
func TestServeEvictsStagedFiles(t *testing.T) {
	s := startWith(t, 1, func(c *serve.Config) { c.EvictEvery = 50 * time.Millisecond }, "127.0.0.1:0")
	ctx := context.Background()
	conn := analyst(t, s.addr)
	const orders = "SELECT count(*), sum(orders), min(order_date)::VARCHAR FROM gold.orders_daily"
	var before, after, n int64
	var day string
	if err := conn.QueryRow(ctx, orders).Scan(&n, &before, &day); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM gold.signups_daily").Scan(&n); err != nil {
		t.Fatal(err)
	}
	dir, err := s.db.TablesDir()
	if err != nil {
		t.Fatal(err)
	}
	staged := func(table string) []string {
		files, err := query.Staged(dir)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range files {
			if strings.Contains(k, table+"/") {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		return keys
	}
	old, signups := staged("orders_daily"), staged("signups_daily")
	if len(old) == 0 || len(signups) == 0 {
		t.Fatalf("staged: %v %v", old, signups)
	}
	var out strings.Builder
	if code := cli.Main([]string{"backfill", "--config", s.config, "--domain", "orders", "--from", day, "--to", day, "--force"}, &out, &out); code != cli.ExitOK {
		t.Fatalf("backfill: exit %d\n%s", code, out.String())
	}
	eventually(t, "the rewritten partition's old file to be evicted", func() bool {
		for _, k := range staged("orders_daily") {
			if slices.Contains(old, k) {
				return false
			}
		}
		return true
	})
	if got := staged("signups_daily"); strings.Join(got, ",") != strings.Join(signups, ",") {
		t.Errorf("live staged files: %v, were %v", got, signups)
	}
	if err := conn.QueryRow(ctx, orders).Scan(&n, &after, &day); err != nil || after != before {
		t.Fatalf("after eviction: %d orders, were %d (%v)", after, before, err)
	}
}
