package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	_ "github.com/medallionlake/medallion/domains/all"
)

// write puts files (name -> content) in a fresh folder and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const ordersDomain = `name: orders
topics: [raw-orders]
partition_key: order_date
timestamp_field: created_at
primary_key: [order_id]
order_by: updated_at
gold:
  - table: orders_daily
    merge_keys: [order_date, city, status]
`

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load("../medallion.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	if cfg.Storage.URL != filepath.Join(root, "lakehouse") {
		t.Errorf("storage.url = %q, want it resolved next to the file", cfg.Storage.URL)
	}
	if cfg.Meta.URL != "sqlite://"+filepath.Join(root, "medallion.db") {
		t.Errorf("meta.url = %q", cfg.Meta.URL)
	}
	var names []string
	for _, d := range cfg.Domains {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"events", "orders", "restaurants", "users"}) {
		t.Fatalf("domains = %v", names)
	}
	ev, _ := cfg.Domain("events")
	if ev.PartitionKey != "event_date" || ev.TimestampField != "event_timestamp" || len(ev.Gold) != 3 || ev.Gold[1].Table != "funnel_daily" {
		t.Errorf("events domain = %+v", ev)
	}
	if ev.RetryLimit(cfg.Pipeline) != 3 {
		t.Errorf("events retry limit = %d", ev.RetryLimit(cfg.Pipeline))
	}
	// The example states the defaults; it must not drift from them.
	def := config.Defaults()
	if cfg.Sink != def.Sink || cfg.Pipeline != def.Pipeline || cfg.DuckDB != def.DuckDB || cfg.Storage.S3 != def.Storage.S3 {
		t.Errorf("example differs from defaults:\n%+v\n%+v", cfg, def)
	}
}

func TestEmbeddedDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.URL != filepath.Join(dir, "lakehouse") || cfg.Pipeline.Workers != 2 || cfg.Sink.FlushMessages != 1000 || cfg.Sink.FlushInterval != time.Minute {
		t.Errorf("defaults = %+v", cfg)
	}
	if len(cfg.Domains) != 4 || cfg.Domains[0].File != "(built in) domains/events/domain.yaml" {
		t.Errorf("without a domains folder the built-in domains load: %+v", cfg.Domains)
	}
}

func TestFileValuesAndDefaults(t *testing.T) {
	dir := write(t, map[string]string{
		"medallion.yaml": `storage:
  url: s3://lake-bucket/prod
  s3:
    endpoint: http://127.0.0.1:7070
    path_style: true
    multipart_threshold: 8MiB
sink:
  flush_bytes: 4MiB
  flush_interval: 15s
pipeline:
  workers: 4
domains_dir: doms
`,
		"doms/orders.yaml": ordersDomain,
	})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.URL != "s3://lake-bucket/prod" || !cfg.Storage.S3.PathStyle || cfg.Storage.S3.MultipartThreshold != 8<<20 {
		t.Errorf("storage = %+v", cfg.Storage)
	}
	if cfg.Sink.FlushBytes != 4<<20 || cfg.Sink.FlushInterval != 15*time.Second || cfg.Sink.FlushMessages != 1000 {
		t.Errorf("sink = %+v", cfg.Sink)
	}
	if cfg.Pipeline.Workers != 4 || cfg.Pipeline.MaxRetries != 3 {
		t.Errorf("pipeline = %+v", cfg.Pipeline)
	}
	if len(cfg.Domains) != 4 || cfg.Domains[1].File != filepath.Join(dir, "doms/orders.yaml") || cfg.Domains[1].Gold[0].Mode != "partition" || cfg.Domains[1].Dedup != "latest" {
		t.Errorf("domains = %+v", cfg.Domains)
	}
}

// A user's domain file replaces the built-in domain of its name or adds
// one; domains: keeps only the listed ones.
func TestUserDomainsReplaceAddAndSelect(t *testing.T) {
	dir := write(t, map[string]string{
		"medallion.yaml":               "domains: [payments, orders]\n",
		"config/domains/orders.yaml":   "sla: 2h\n" + ordersDomain,
		"config/domains/payments.yaml": strings.NewReplacer("name: orders", "name: payments", "raw-orders", "raw-payments").Replace(ordersDomain),
		"bad/medallion.yaml":           "domains: [orders, ledger]\n",
	})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range cfg.Domains {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "orders,payments" {
		t.Fatalf("domains = %v", names)
	}
	if o, _ := cfg.Domain("orders"); o.SLA != 2*time.Hour || o.File != filepath.Join(dir, "config/domains/orders.yaml") {
		t.Errorf("orders = %+v, want the user's file", o)
	}
	_, err = config.Load(filepath.Join(dir, "bad/medallion.yaml"))
	if err == nil || !strings.Contains(err.Error(), `bad/medallion.yaml:1: domains: unknown domain "ledger" (known: events, orders, restaurants, users)`) {
		t.Errorf("unknown domain selected: %v", err)
	}
}

// Each bad file gives exactly the located message a user needs.
func TestErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // each line of the error, with FILE for the path
	}{
		{"unsupported scheme", "storage:\n  url: ftp://host/x\n",
			[]string{`FILE:2: storage.url: unsupported scheme "ftp" (want a folder, file:// or s3://)`}},
		{"unknown top-level key", "storage:\n  url: ./lake\nworkers: 3\n",
			[]string{`FILE:3: workers: unknown key`}},
		{"unknown nested key with suggestion", "sink:\n  flush_mesages: 10\n",
			[]string{`FILE:2: sink.flush_mesages: unknown key (did you mean "flush_messages"?)`}},
		{"duplicate key", "pipeline:\n  workers: 2\n  workers: 3\n",
			[]string{`FILE:3: pipeline.workers: duplicate key`}},
		{"wrong type", "pipeline:\n  workers: many\n",
			[]string{`FILE:2: pipeline.workers: cannot use "many" as an integer`}},
		{"bad duration", "sink:\n  flush_interval: soon\n",
			[]string{`FILE:2: sink.flush_interval: cannot use "soon" as a duration (e.g. 90s, 10m, 1h)`}},
		{"bad retention", "lake:\n  snapshot_retention: 7 days\n",
			[]string{`FILE:2: lake.snapshot_retention: cannot use "7 days" as a duration (e.g. 90s, 1h, 7d)`}},
		{"negative orphan age", "lake:\n  orphan_age: -1h\n  min_snapshots: 0\n",
			[]string{
				`FILE:2: lake.orphan_age: must not be negative, got -1h0m0s`,
				`FILE:3: lake.min_snapshots: must be greater than 0, got 0`,
			}},
		{"bad bronze listing", "bronze:\n  listing:\n    recent: 36h\n    full_every: -1h\n",
			[]string{
				`FILE:3: bronze.listing.recent: must be whole days, at least 1d, got 36h0m0s`,
				`FILE:4: bronze.listing.full_every: must not be negative, got -1h0m0s`,
			}},
		{"bad size", "sink:\n  memory_budget: lots\n",
			[]string{`FILE:2: sink.memory_budget: cannot use "lots" as a size (e.g. 64MiB, 1GB)`}},
		{"bad sources", "sources:\n  app:\n    url: mysql://db/app\n    extracts:\n      users: {mode: incremental, table: users, mask: {email: md5}}\n      orders: {mode: snapshots, query: x, table: y}\n      restaurants: {mode: snapshot, table: r, watermark: at}\n      events: {mode: cdc, query: x}\n",
			[]string{
				`FILE:3: sources.app.url: invalid URL: want postgres://user:${PASSWORD}@host:5432/db`,
				`FILE:8: sources.app.extracts.events.table: a cdc extract captures one table's changes: set table`,
				`FILE:6: sources.app.extracts.orders.mode: want incremental, snapshot or cdc, got "snapshots"`,
				`FILE:6: sources.app.extracts.orders.table: set exactly one of table, query and query_file`,
				`FILE:7: sources.app.extracts.restaurants.watermark: a snapshot extract reads every row each time: drop watermark and key`,
				`FILE:5: sources.app.extracts.users.watermark: an incremental extract needs the timestamp column it follows`,
				`FILE:5: sources.app.extracts.users.key: an incremental extract needs the key columns that break the watermark's ties`,
				`FILE:5: sources.app.extracts.users.mask.email: unknown mask "md5" (want sha256)`,
			}},
		{"unknown extract key", "sources:\n  app:\n    url: postgres://db/app\n    extracts:\n      users: {mode: incremental, tabel: users}\n",
			[]string{`FILE:5: sources.app.extracts.users.tabel: unknown key (did you mean "table"?)`}},
		{"mapping expected", "storage: ./lake\n",
			[]string{`FILE:1: storage: expected a mapping of keys, got "./lake"`}},
		{"syntax error", "storage:\n  url: a: b\n",
			[]string{`FILE:2: invalid YAML: mapping values are not allowed in this context`}},
		{"tab indentation", "storage:\n\turl: x\n",
			[]string{`FILE:2: invalid YAML: found character that cannot start any token`}},
		{"several at once", "pipeline:\n  workers: 0\n  max_retries: -1\nmeta:\n  url: mysql://db\n",
			[]string{
				`FILE:5: meta.url: unsupported scheme "mysql" (want sqlite or postgres)`,
				`FILE:2: pipeline.workers: must be greater than 0, got 0`,
				`FILE:3: pipeline.max_retries: must not be negative, got -1`,
			}},
		{"s3 without bucket and tiny parts", "storage:\n  url: s3:///prefix\n  s3:\n    multipart_threshold: 1MiB\n",
			[]string{
				`FILE:2: storage.url: s3 URL "s3:///prefix" has no bucket (want s3://bucket/prefix)`,
				`FILE:4: storage.s3.multipart_threshold: must be at least 5MiB (the S3 minimum part size), got 1.0 MiB`,
			}},
		{"bad broker list entry", "kafka:\n  brokers: [ok:9092, nope]\n",
			[]string{`FILE:2: kafka.brokers[1]: invalid broker address "nope": want host:port`}},
		{"unset env var", "kafka:\n  sasl:\n    mechanism: plain\n    username: svc\n    password: ${MEDALLION_TEST_UNSET_SECRET}\n",
			[]string{`FILE:5: kafka.sasl.password: environment variable MEDALLION_TEST_UNSET_SECRET is not set (write ${MEDALLION_TEST_UNSET_SECRET:-default} to allow that)`}},
		{"default value not in range", "sink:\n  flush_bytes: 1GiB\n",
			[]string{`FILE:2: sink.flush_bytes: must not exceed sink.memory_budget (128 MiB)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"medallion.yaml": tc.yaml})
			file := filepath.Join(dir, "medallion.yaml")
			_, err := config.Load(file)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !config.IsConfigError(err) {
				t.Errorf("IsConfigError = false for %v", err)
			}
			want := strings.ReplaceAll(strings.Join(tc.want, "\n"), "FILE", file)
			if err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.HasSuffix(err.Error(), "nope.yaml: config file not found") || !config.IsConfigError(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvInterpolationAndOverrides(t *testing.T) {
	t.Setenv("MEDALLION_TEST_KAFKA_PW", "s3cret")
	t.Setenv("MEDALLION_TEST_WORKERS", "6")
	t.Setenv("MEDALLION_KAFKA_BROKERS", "b1:9092, b2:9092")
	t.Setenv("MEDALLION_DUCKDB_MEMORY_LIMIT", "2GB")
	t.Setenv("MEDALLION_SINK_FLUSH_INTERVAL", "5s")
	dir := write(t, map[string]string{"medallion.yaml": `kafka:
  brokers: [ignored:1]
  sasl:
    mechanism: scram-sha-512
    username: svc
    password: ${MEDALLION_TEST_KAFKA_PW}
pipeline:
  workers: ${MEDALLION_TEST_WORKERS}
  max_retries: ${MEDALLION_TEST_UNSET:-5}
`})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.Password != "s3cret" || cfg.Pipeline.Workers != 6 || cfg.Pipeline.MaxRetries != 5 {
		t.Errorf("interpolation: password %q workers %d retries %d", cfg.Kafka.SASL.Password, cfg.Pipeline.Workers, cfg.Pipeline.MaxRetries)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"b1:9092", "b2:9092"}) || cfg.DuckDB.MemoryLimit != "2GB" || cfg.Sink.FlushInterval != 5*time.Second {
		t.Errorf("overrides: brokers %v memory %q interval %v", cfg.Kafka.Brokers, cfg.DuckDB.MemoryLimit, cfg.Sink.FlushInterval)
	}
}

func TestEnvOverrideErrorsNameTheVariable(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("MEDALLION_PIPELINE_WORKERS", "lots")
	_, err := config.Load("")
	if err == nil || err.Error() != `MEDALLION_PIPELINE_WORKERS (environment): pipeline.workers: cannot use "lots" as an integer` {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("MEDALLION_PIPELINE_WORKERS", "2")
	t.Setenv("MEDALLION_STORAGE_URL", "ftp://x")
	_, err = config.Load("")
	if err == nil || err.Error() != `MEDALLION_STORAGE_URL (environment): storage.url: unsupported scheme "ftp" (want a folder, file:// or s3://)` {
		t.Fatalf("err = %v", err)
	}
}

func TestDomainFileErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown key", map[string]string{"d/orders.yaml": ordersDomain + "partiton_key: x\n"},
			`d/orders.yaml:10: partiton_key: unknown key (did you mean "partition_key"?)`},
		{"missing topics and bad mode", map[string]string{"d/orders.yaml": strings.Replace(ordersDomain, "topics: [raw-orders]\n", "", 1) + "    mode: sometimes\n"},
			"d/orders.yaml: topics: must list at least one Kafka topic\n" +
				`d/orders.yaml:9: gold[0].mode: unsupported value "sometimes" (want one of: partition, current)`},
		{"duplicate domain", map[string]string{"d/orders.yaml": ordersDomain, "d/orders2.yaml": ordersDomain},
			`d/orders2.yaml: name: domain "orders" is already defined in DIR/d/orders.yaml`},
		{"topic in two domains", map[string]string{"d/orders.yaml": ordersDomain, "d/x.yaml": strings.Replace(ordersDomain, "name: orders", "name: x", 1)},
			`d/x.yaml: topics: topic "raw-orders" already belongs to domain "orders"`},
		{"bad bound", map[string]string{"d/orders.yaml": ordersDomain + "timestamp_bounds:\n  min: yesterday\n"},
			`d/orders.yaml:11: timestamp_bounds.min: invalid time "yesterday": want RFC 3339 or YYYY-MM-DD`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.files["medallion.yaml"] = "domains_dir: d\n"
			dir := write(t, tc.files)
			_, err := config.Load(filepath.Join(dir, "medallion.yaml"))
			if err == nil {
				t.Fatal("loaded without error")
			}
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			got := strings.ReplaceAll(err.Error(), dir+"/", "")
			if got != strings.ReplaceAll(want, dir+"/", "") {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestExplicitMissingDomainsDir(t *testing.T) {
	dir := write(t, map[string]string{"medallion.yaml": "domains_dir: nowhere\n"})
	_, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err == nil || !strings.Contains(err.Error(), "domains_dir: cannot read") {
		t.Fatalf("err = %v", err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("MEDALLION_CONFIG", "")
	if got := config.Find(""); got != "" {
		t.Errorf("Find with nothing = %q", got)
	}
	if err := os.WriteFile("medallion.yaml", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := config.Find(""); got != "medallion.yaml" {
		t.Errorf("Find with ./medallion.yaml = %q", got)
	}
	t.Setenv("MEDALLION_CONFIG", "/etc/medallion.yaml")
	if got := config.Find(""); got != "/etc/medallion.yaml" {
		t.Errorf("Find with $MEDALLION_CONFIG = %q", got)
	}
	if got := config.Find("x.yaml"); got != "x.yaml" {
		t.Errorf("Find explicit = %q", got)
	}
}

func TestExportNeedsAPostgresURL(t *testing.T) {
	dir := write(t, map[string]string{
		"medallion.yaml":    "domains_dir: d\n",
		"d/orders.yaml":     ordersDomain + "    export: true\n",
		"ok/medallion.yaml": "domains_dir: ../d\nexport:\n  postgres:\n    url: postgres://bi@db:5432/analytics\n",
	})
	_, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	want := filepath.Join(dir, "d/orders.yaml") + ": gold[0].export: table orders_daily is marked for export but export.postgres.url is not set in " + filepath.Join(dir, "medallion.yaml")
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	cfg, err := config.Load(filepath.Join(dir, "ok/medallion.yaml"))
	orders, _ := cfg.Domain("orders")
	if err != nil || !orders.Gold[0].Export || cfg.Export.Postgres.Schema != "medallion_gold" {
		t.Fatalf("with a URL: %+v %v", cfg, err)
	}
	bad := write(t, map[string]string{"medallion.yaml": "export:\n  postgres:\n    url: mysql://x\n"})
	if _, err := config.Load(filepath.Join(bad, "medallion.yaml")); err == nil || !strings.Contains(err.Error(), "medallion.yaml:3: export.postgres.url: invalid URL") {
		t.Fatalf("bad export URL: %v", err)
	}
}

// TestLakeDurationsTakeDays: the lake section's durations take days as
// well as Go's units, from the file and from the environment.
func TestLakeDurationsTakeDays(t *testing.T) {
	t.Setenv("MEDALLION_LAKE_ORPHAN_AGE", "90s")
	dir := write(t, map[string]string{"medallion.yaml": "lake:\n  snapshot_retention: 1d12h\n  orphan_age: 2d\n"})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Lake.SnapshotRetention) != 36*time.Hour || time.Duration(cfg.Lake.OrphanAge) != 90*time.Second {
		t.Fatalf("retention %s, orphan age %s", cfg.Lake.SnapshotRetention, cfg.Lake.OrphanAge)
	}
	for in, want := range map[string]time.Duration{"400d": 400 * config.Day, "7d": 7 * config.Day, "1h": time.Hour, "0s": 0} {
		if d, err := config.ParseDuration(in); err != nil || time.Duration(d) != want {
			t.Errorf("%s = %v, %v", in, d, err)
		}
	}
	if d := config.Defaults().Lake; d.SnapshotRetention.String() != "7d" || d.OrphanAge.String() != "1d" || !d.MaintainAfterRun {
		t.Fatalf("defaults %+v", d)
	}
}

func TestServeUsers(t *testing.T) {
	t.Setenv("MEDALLION_TEST_ANALYST_PASSWORD", "s3cret")
	dir := write(t, map[string]string{"medallion.yaml": "serve:\n  addr: 0.0.0.0:6432\n  users:\n" +
		"    - name: analyst\n      password: ${MEDALLION_TEST_ANALYST_PASSWORD}\n" +
		"    - name: viewer\n      password: SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5\n"})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Serve.Users
	if cfg.Serve.Addr != "0.0.0.0:6432" || len(u) != 2 || u[0] != (config.ServeUser{Name: "analyst", Password: "s3cret"}) || u[1].Password != "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5" {
		t.Fatalf("serve = %+v", cfg.Serve)
	}
	if d := config.Defaults().Serve; d.Addr != "127.0.0.1:5433" || len(d.Users) != 0 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestExtractNeedsADomain(t *testing.T) {
	dir := write(t, map[string]string{"medallion.yaml": "sources:\n  app:\n    url: postgres://db/app\n    extracts:\n      payments: {mode: incremental, table: p, watermark: at, key: [id]}\n"})
	_, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err == nil || !strings.Contains(err.Error(), `medallion.yaml:5: sources.app.extracts.payments: no domain "payments" (configured: events, orders, restaurants, users)`) {
		t.Fatalf("an extract of an unknown domain: %v", err)
	}
}

func TestSources(t *testing.T) {
	t.Setenv("APP_DB_PASSWORD", "s3cret")
	dir := write(t, map[string]string{
		"medallion.yaml": "sources:\n  app:\n    url: postgres://reader:${APP_DB_PASSWORD}@db:5432/app\n    extracts:\n" +
			"      users: {mode: incremental, table: users, watermark: updated_at, key: user_id, mask: {email: sha256}}\n" +
			"      mine: {domain: orders, mode: incremental, query_file: sql/mine.sql, watermark: updated_at, key: [id], batch: 500}\n",
	})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.Sources["app"]
	if app.URL != "postgres://reader:s3cret@db:5432/app" || len(app.Extracts) != 2 {
		t.Fatalf("source: %+v", app)
	}
	mine := app.Extracts["mine"]
	if mine.DomainName("mine") != "orders" || mine.QueryFile != filepath.Join(dir, "sql/mine.sql") || mine.Batch != 500 {
		t.Fatalf("extract mine: %+v", mine)
	}
	if u := app.Extracts["users"]; u.DomainName("users") != "users" || u.Mask["email"] != "sha256" || u.Key[0] != "user_id" {
		t.Fatalf("extract users: %+v", u)
	}
	if got := app.ExtractNames(); len(got) != 2 || got[0] != "mine" {
		t.Fatalf("extract names: %v", got)
	}
}

// An extract of a built-in domain that names only its mode gets the
// domain's built-in extract; a mode the domain has none for is named.
func TestBuiltinExtracts(t *testing.T) {
	dir := write(t, map[string]string{
		"medallion.yaml": "sources:\n  app:\n    url: postgres://reader@db:5432/app\n    extracts:\n" +
			"      orders: {mode: cdc, batch: 500}\n      restaurants: {mode: snapshot}\n      users: {mode: incremental}\n",
		"bad/medallion.yaml": "sources:\n  app:\n    url: postgres://reader@db:5432/app\n    extracts:\n      restaurants: {mode: incremental}\n",
	})
	cfg, err := config.Load(filepath.Join(dir, "medallion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.Sources["app"]
	if o := app.Extracts["orders"]; o.Table != "orders" || o.Key[0] != "order_id" || !strings.Contains(o.Query, "FROM order_items") || o.Batch != 500 {
		t.Errorf("orders cdc = %+v", o)
	}
	if r := app.Extracts["restaurants"]; !strings.Contains(r.Query, "menu_items") || r.Mode != "snapshot" {
		t.Errorf("restaurants snapshot = %+v", r)
	}
	if u := app.Extracts["users"]; u.Watermark != "updated_at" || !strings.Contains(u.Query, "sha256") {
		t.Errorf("users incremental = %+v", u)
	}
	_, err = config.Load(filepath.Join(dir, "bad/medallion.yaml"))
	if err == nil || !strings.Contains(err.Error(), "bad/medallion.yaml:5: sources.app.extracts.restaurants.table: domain restaurants has built-in extracts for snapshot only: set table, query or query_file") {
		t.Errorf("a mode without a built-in extract: %v", err)
	}
}

// Changing the built-in domains one load returned changes no later load.
func TestBuiltinDomainsAreCopies(t *testing.T) {
	first, err := config.BuiltinDomains()
	if err != nil {
		t.Fatal(err)
	}
	first[1].Gold[0].Export, first[1].Topics[0] = true, "changed"
	again, _ := config.BuiltinDomains()
	if again[1].Gold[0].Export || again[1].Topics[0] != "raw-orders" {
		t.Fatalf("the registry changed with a caller's copy: %+v", again[1])
	}
}
