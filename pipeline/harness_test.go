package pipeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	_ "github.com/medallionlake/medallion/domains/all"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// env is a complete deployment for one test: meta store, storage, Iceberg
// catalog and DuckDB, all real.
type env struct {
	cfg  *config.Config
	deps pipeline.Deps
}

var backendNames = []string{"sqlite+local", "postgres+s3"}

// newEnv builds the embedded deployment (SQLite, local files) or the
// production one (PostgreSQL, S3 on versitygw).
func newEnv(t *testing.T, backend string, reg *domains.Registry, domainCfgs []config.Domain) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), backend, reg, domainCfgs)
}

// newEnvIn is newEnv with its local files (SQLite, lakehouse) in dir.
func newEnvIn(t testing.TB, dir, backend string, reg *domains.Registry, domainCfgs []config.Domain) *env {
	t.Helper()
	cfg := config.Defaults()
	cfg.Pipeline.Workers = 2
	cfg.Pipeline.LeaseTTL = time.Minute
	cfg.DuckDB.Threads = 2
	if domainCfgs == nil {
		doms, err := config.BuiltinDomains()
		if err != nil {
			t.Fatal(err)
		}
		domainCfgs = doms
	}
	cfg.Domains = domainCfgs
	var (
		bucket  storage.Bucket
		metaURL string
	)
	switch backend {
	case "sqlite+local":
		b, err := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
		if err != nil {
			t.Fatal(err)
		}
		bucket, metaURL = b, "sqlite://"+filepath.Join(dir, "medallion.db")
	case "postgres+s3":
		srv := testenv.StartS3(t)
		cfg.Storage.S3 = config.S3{Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
		bucket, metaURL = srv.Bucket(t, "medallion", nil), testenv.PostgresSchema(t)
	default:
		t.Fatalf("unknown backend %s", backend)
	}
	return newEnvOn(t, &cfg, reg, metaURL, bucket)
}

// newEnvOn is an env of cfg on an existing meta store and bucket: another
// process of a deployment.
func newEnvOn(t testing.TB, cfg *config.Config, reg *domains.Registry, metaURL string, bucket storage.Bucket) *env {
	t.Helper()
	ctx := context.Background()
	if reg == nil {
		reg = domains.Default
	}
	store, err := meta.Open(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := lake.Open(ctx, store, bucket, cfg.Storage.S3)
	if err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(cfg.DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	doms, err := reg.BindAll(cfg.Domains)
	if err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, deps: pipeline.Deps{Config: cfg, Store: store, Bucket: bucket, Lake: l, Duck: db, Domains: doms,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

func (e *env) run(t *testing.T, opts pipeline.Options) pipeline.Summary {
	t.Helper()
	sum, err := pipeline.Run(context.Background(), e.deps, opts)
	if err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
	return sum
}

func (e *env) write(t *testing.T, msgs []generate.Message, late bool) generate.BronzeStats {
	t.Helper()
	st, err := generate.WriteBronze(context.Background(), e.deps.Bucket, e.cfg.Domains, msgs, late, 400, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rows reads a table's live rows through the catalog (as medallion query
// will) and returns the rows of q, where q selects FROM t, as tab-joined
// strings sorted.
func (e *env) rows(t testing.TB, table, q string) []string {
	t.Helper()
	ctx := context.Background()
	id, err := lake.ParseTableID(table)
	if err != nil {
		t.Fatal(err)
	}
	files, err := e.deps.Lake.Files(ctx, id, nil, lake.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.deps.Duck.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if len(files) == 0 {
		return nil
	}
	paths, err := e.deps.Lake.Fetch(ctx, files, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel, err := e.deps.Lake.Relation(ctx, conn, id, lake.Snapshot{}, paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE OR REPLACE TEMP VIEW t AS SELECT * FROM "+rel); err != nil {
		t.Fatal(err)
	}
	return queryStrings(t, conn, q)
}

func queryStrings(t testing.TB, conn *sql.Conn, q string) []string {
	t.Helper()
	// Every value as DuckDB's own text, so DATE and DECIMAL compare as text.
	rs, err := conn.QueryContext(context.Background(), "SELECT COLUMNS(*)::VARCHAR FROM ("+q+")")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return scanStrings(t, rs)
}

// scanStrings reads every row as tab-joined text (NULL as "NULL"), sorted.
func scanStrings(t testing.TB, rs *sql.Rows) []string {
	t.Helper()
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "\t"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// snapshots returns the current snapshot id of every table.
func (e *env) snapshots(t *testing.T) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	out := map[string]int64{}
	for _, ns := range lake.Namespaces {
		ids, err := e.deps.Lake.Tables(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			tbl, err := e.deps.Lake.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if s := tbl.CurrentSnapshot(); s != nil {
				out[id.String()] = s.SnapshotID
			}
		}
	}
	return out
}

func (e *env) state(t *testing.T, domain, date string) meta.Partition {
	t.Helper()
	p, err := e.deps.Store.Get(context.Background(), medtype.PartitionKey{Domain: domain, Date: medtype.MustDate(date)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// diff compares two sorted row lists and reports the first differences.
func diff(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, g := range got {
		gs[g] = true
	}
	for _, w := range want {
		ws[w] = true
	}
	var extra, missing []string
	for _, g := range got {
		if !ws[g] {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !gs[w] {
			missing = append(missing, w)
		}
	}
	t.Errorf("%s: %d rows, want %d; %d unexpected, %d missing\nunexpected (first 5): %q\nmissing (first 5): %q",
		what, len(got), len(want), len(extra), len(missing), head(extra), head(missing))
}

func head(xs []string) []string {
	if len(xs) > 5 {
		return xs[:5]
	}
	return xs
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fmtCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

func itoa(n int) string { return fmt.Sprint(n) }
