package lake_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

type bundle struct {
	store meta.Store
	lake  *lake.Lake
	duck  *duck.DB
	stage string
}

// backends are the two deployments the lake must work on: the embedded one
// (SQLite catalog, local files) and the production one (PostgreSQL catalog,
// S3).
func backends(t *testing.T) map[string]func(t *testing.T) bundle {
	return map[string]func(t *testing.T) bundle{
		"sqlite+local": func(t *testing.T) bundle {
			dir := t.TempDir()
			b, err := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lake")})
			if err != nil {
				t.Fatal(err)
			}
			return setup(t, "sqlite://"+filepath.Join(dir, "medallion.db"), b, config.S3{})
		},
		"postgres+s3": func(t *testing.T) bundle {
			srv := testenv.StartS3(t)
			cfg := config.S3{Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
			b := srv.Bucket(t, "prod", nil)
			return setup(t, testenv.PostgresSchema(t), b, cfg)
		},
	}
}

func setup(t *testing.T, metaURL string, b storage.Bucket, s3cfg config.S3) bundle {
	t.Helper()
	ctx := context.Background()
	store, err := meta.Open(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := lake.Open(ctx, store, b, s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := duck.Open(config.DuckDB{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return bundle{store: store, lake: l, duck: d, stage: t.TempDir()}
}

func conn(t *testing.T, d *duck.DB) *sql.Conn {
	t.Helper()
	c, err := d.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exec(t *testing.T, c *sql.Conn, q string) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// events makes a TEMP table src with n rows for day.
func events(t *testing.T, c *sql.Conn, day string, n int, amountFactor float64) {
	exec(t, c, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE src AS SELECT DATE '%s' AS event_date, 'e-' || i AS event_id,
		CAST(i * %g AS DECIMAL(12,2)) AS amount, TIMESTAMP '%s 10:00:00' + INTERVAL (i) SECOND AS ts FROM range(%d) r(i)`, day, amountFactor, day, n))
}

// writeEvents writes events of day (see events) as the day's partition of
// the table of def.
func writeEvents(t *testing.T, b bundle, c *sql.Conn, def lake.TableDef, day string, n int, amountFactor float64) lake.Commit {
	t.Helper()
	events(t, c, day, n, amountFactor)
	cm, err := b.lake.Write(context.Background(), c, def, "src", lake.PartitionScope("event_date", medtype.MustDate(day)), b.stage)
	if err != nil {
		t.Fatalf("write %s: %v", day, err)
	}
	return cm
}

// setProperties commits table properties, as a person or another engine
// would.
func setProperties(t *testing.T, b bundle, id lake.TableID, props iceberg.Properties) {
	t.Helper()
	ctx := context.Background()
	tbl, err := b.lake.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(props); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// read returns count and sum(amount) of the partition's live rows, read by
// DuckDB from the planned files.
func read(t *testing.T, b bundle, c *sql.Conn, id lake.TableID, p *lake.Partition, at lake.Snapshot) (int64, string) {
	t.Helper()
	ctx := context.Background()
	files, err := b.lake.Files(ctx, id, p, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		return 0, "0"
	}
	paths, err := b.lake.Fetch(ctx, files, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var sum string
	if err := c.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(amount), 0)::VARCHAR FROM "+duck.ReadParquet(paths, false)).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	return n, sum
}

func TestWritePartitions(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date", SortBy: []string{"event_id"}}
			d15 := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-15")}
			s15 := lake.PartitionScope("event_date", d15.Date)
			d16 := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-16")}
			s16 := lake.PartitionScope("event_date", d16.Date)

			events(t, c, "2024-01-15", 100, 1.25)
			c1, err := b.lake.Write(ctx, c, def, "src", s15, b.stage)
			if err != nil {
				t.Fatal(err)
			}
			events(t, c, "2024-01-16", 40, 2)
			c2, err := b.lake.Write(ctx, c, def, "src", s16, b.stage)
			if err != nil {
				t.Fatal(err)
			}
			if !c1.Changed || !c2.Changed || c2.SnapshotID == c1.SnapshotID {
				t.Fatalf("first writes: %+v %+v", c1, c2)
			}
			if n, sum := read(t, b, c, id, d15, lake.Snapshot{}); n != 100 || sum != "6187.50" {
				t.Fatalf("2024-01-15 = %d rows, sum %s", n, sum)
			}

			// The same rows again: no new snapshot.
			events(t, c, "2024-01-15", 100, 1.25)
			again, err := b.lake.Write(ctx, c, def, "src", s15, b.stage)
			if err != nil {
				t.Fatal(err)
			}
			if again.Changed || again.SnapshotID != c2.SnapshotID {
				t.Fatalf("rewriting identical rows committed: %+v (was %d)", again, c2.SnapshotID)
			}

			// Changed rows replace the partition, and only it.
			events(t, c, "2024-01-15", 10, 3)
			c3, err := b.lake.Write(ctx, c, def, "src", s15, b.stage)
			if err != nil || !c3.Changed || c3.Replaced != 1 {
				t.Fatalf("replace: %+v %v", c3, err)
			}
			if n, sum := read(t, b, c, id, d15, lake.Snapshot{}); n != 10 || sum != "135.00" {
				t.Fatalf("after replace 2024-01-15 = %d rows, sum %s", n, sum)
			}
			if n, _ := read(t, b, c, id, d16, lake.Snapshot{}); n != 40 {
				t.Fatalf("the other partition changed: %d rows", n)
			}
			if n, _ := read(t, b, c, id, nil, lake.Snapshot{}); n != 50 {
				t.Fatalf("whole table = %d rows", n)
			}
			// Time travel to the first write of the day.
			if n, sum := read(t, b, c, id, d15, lake.Snapshot{ID: c1.SnapshotID}); n != 100 || sum != "6187.50" {
				t.Fatalf("as of %d: %d rows, sum %s", c1.SnapshotID, n, sum)
			}

			// An empty result empties the partition.
			exec(t, c, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM src WHERE false")
			c4, err := b.lake.Write(ctx, c, def, "src", s15, b.stage)
			if err != nil || !c4.Changed {
				t.Fatalf("empty write: %+v %v", c4, err)
			}
			if n, _ := read(t, b, c, id, d15, lake.Snapshot{}); n != 0 {
				t.Fatalf("emptied partition has %d rows", n)
			}
			c5, err := b.lake.Write(ctx, c, def, "src", s15, b.stage)
			if err != nil || c5.Changed {
				t.Fatalf("second empty write: %+v %v", c5, err)
			}
		})
	}
}

func TestSchemaChangeIsRefused(t *testing.T) {
	b := backends(t)["sqlite+local"](t)
	ctx := context.Background()
	c := conn(t, b.duck)
	def := lake.TableDef{ID: lake.TableID{Namespace: "gold", Name: "dim"}}
	exec(t, c, "CREATE TEMP TABLE src AS SELECT 1 AS id, 'a' AS name")
	if _, err := b.lake.Write(ctx, c, def, "src", lake.Scope{}, b.stage); err != nil {
		t.Fatal(err)
	}
	exec(t, c, "CREATE OR REPLACE TEMP TABLE src AS SELECT 1 AS id, 2 AS name")
	if _, err := b.lake.Write(ctx, c, def, "src", lake.Scope{}, b.stage); !errors.Is(err, lake.ErrSchemaChanged) {
		t.Fatalf("changed column type: %v", err)
	}
	exec(t, c, "CREATE OR REPLACE TEMP TABLE src AS SELECT 1::HUGEINT AS id")
	if _, err := b.lake.Write(ctx, c, lake.TableDef{ID: lake.TableID{Namespace: "gold", Name: "other"}}, "src", lake.Scope{}, b.stage); err == nil {
		t.Fatal("HUGEINT column accepted")
	}
}

// Workers writing different partitions of one table at once all land,
// through the commit-retry loop.
func TestConcurrentWritersRetry(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			c0 := conn(t, b.duck)
			events(t, c0, "2024-01-01", 1, 1)
			if _, err := b.lake.Write(ctx, c0, def, "src", lake.PartitionScope("event_date", medtype.MustDate("2024-01-01")), b.stage); err != nil {
				t.Fatal(err)
			}
			const writers = 6
			writeConcurrently(t, b, def, writers, func(int, medtype.Date) *lake.Lake { return b.lake })
			n, _ := read(t, b, c0, id, nil, lake.Snapshot{})
			if want := int64(1 + 10*writers + writers*(writers-1)/2); n != want {
				t.Fatalf("table has %d rows, want %d", n, want)
			}
		})
	}
}

// One write can replace several partitions (gold tables keyed by another
// date, e.g. signups by signup date); partitions in scope without rows are
// emptied, and rows outside scope are refused.
func TestWriteSeveralPartitions(t *testing.T) {
	b := backends(t)["sqlite+local"](t)
	ctx := context.Background()
	c := conn(t, b.duck)
	id := lake.TableID{Namespace: "gold", Name: "signups_daily"}
	def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
	d := medtype.MustDate
	exec(t, c, `CREATE TEMP TABLE src AS SELECT * FROM (VALUES (DATE '2024-01-01', 1.00::DECIMAL(12,2)), (DATE '2024-01-02', 2.00), (DATE '2024-01-03', 3.00)) v(event_date, amount)`)
	if _, err := b.lake.Write(ctx, c, def, "src", lake.Scope{Column: "event_date", Dates: []medtype.Date{d("2024-01-01"), d("2024-01-02"), d("2024-01-03")}}, b.stage); err != nil {
		t.Fatal(err)
	}
	before, _ := b.lake.Files(ctx, id, nil, lake.Snapshot{})
	exec(t, c, `CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM (VALUES (DATE '2024-01-02', 20.00::DECIMAL(12,2))) v(event_date, amount)`)
	cm, err := b.lake.Write(ctx, c, def, "src", lake.Scope{Column: "event_date", Dates: []medtype.Date{d("2024-01-02"), d("2024-01-03")}}, b.stage)
	if err != nil || !cm.Changed || cm.Replaced != 2 {
		t.Fatalf("write = %+v, %v", cm, err)
	}
	after, _ := b.lake.Files(ctx, id, nil, lake.Snapshot{})
	if len(before) != 3 || len(after) != 2 || after[0] != before[0] {
		t.Fatalf("files before %v after %v: 2024-01-01 must be untouched, 03 emptied", before, after)
	}
	if n, sum := read(t, b, c, id, nil, lake.Snapshot{}); n != 2 || sum != "21.00" {
		t.Fatalf("table = %d rows, sum %s", n, sum)
	}
	if _, err := b.lake.Write(ctx, c, def, "src", lake.PartitionScope("event_date", d("2024-01-01")), b.stage); err == nil || !strings.Contains(err.Error(), "outside the partitions written") {
		t.Fatalf("rows outside the scope: %v", err)
	}
}

// TestCommitRetryPinnedOff: iceberg-go's own commit retry stays off on
// every table Medallion writes (created with it, and pinned again on a
// table where it was set by hand), since Medallion retries by recomputing
// and iceberg-go's retry would merge two writers' files.
func TestCommitRetryPinnedOff(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			c := conn(t, b.duck)
			write := func(day string) {
				t.Helper()
				events(t, c, day, 3, 1)
				if _, err := b.lake.Write(ctx, c, def, "src", lake.PartitionScope("event_date", medtype.MustDate(day)), b.stage); err != nil {
					t.Fatal(err)
				}
			}
			retries := func() string {
				t.Helper()
				tbl, err := b.lake.Load(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return tbl.Properties()[table.CommitNumRetriesKey]
			}
			write("2024-01-01")
			if got := retries(); got != "0" {
				t.Fatalf("a new table has %s = %q, want \"0\"", table.CommitNumRetriesKey, got)
			}
			setProperties(t, b, id, iceberg.Properties{table.CommitNumRetriesKey: "4"})
			write("2024-01-02")
			if got := retries(); got != "0" {
				t.Fatalf("after a write, a table set by hand has %s = %q, want \"0\"", table.CommitNumRetriesKey, got)
			}
		})
	}
}

// TestMetadataLogIsShort: a table keeps 20 previous metadata files in its
// log, not Iceberg's default 100, unless it sets its own number.
func TestMetadataLogIsShort(t *testing.T) {
	b := backends(t)["sqlite+local"](t)
	ctx := context.Background()
	c := conn(t, b.duck)
	id := lake.TableID{Namespace: "silver", Name: "events"}
	def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
	day := medtype.MustDate("2024-01-01")
	for i := range 24 {
		writeEvents(t, b, c, def, day.AddDays(i).String(), 2, 1)
	}
	tbl, err := b.lake.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(slices.Collect(tbl.Metadata().PreviousFiles())); n != 20 {
		t.Fatalf("the metadata log holds %d files after 24 commits, want 20", n)
	}
	setProperties(t, b, id, iceberg.Properties{table.MetadataPreviousVersionsMaxKey: "30"})
	for i := range 12 {
		writeEvents(t, b, c, def, day.AddDays(30+i).String(), 2, 1)
	}
	if tbl, err = b.lake.Load(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := len(slices.Collect(tbl.Metadata().PreviousFiles())); n != 30 {
		t.Fatalf("a table that sets its own log length holds %d files, want 30", n)
	}
}

// TestDamagedFileIsVerifiedAndRepaired: a live data file damaged in storage
// (overwritten, or deleted) is named by Verify; writing the partition's
// same rows again does not skip it but writes them anew (under a name of
// their own) in a new snapshot, after which Verify is clean, the rows are
// the expected ones, and a further write of the same rows commits nothing.
func TestDamagedFileIsVerifiedAndRepaired(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "gold", Name: "orders_daily"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			for _, damage := range []string{"overwrite", "delete"} {
				day := map[string]string{"overwrite": "2024-01-15", "delete": "2024-01-16"}[damage]
				p := &lake.Partition{Column: "event_date", Date: medtype.MustDate(day)}
				scope := lake.PartitionScope("event_date", p.Date)
				events(t, c, day, 50, 1.5)
				first, err := b.lake.Write(ctx, c, def, "src", scope, b.stage)
				if err != nil {
					t.Fatal(err)
				}
				files, err := b.lake.Files(ctx, id, p, lake.Snapshot{})
				if err != nil || len(files) != 1 {
					t.Fatalf("files: %v %v", files, err)
				}
				key, err := storage.KeyOf(b.lake.Bucket(), files[0].URI)
				if err != nil {
					t.Fatal(err)
				}
				if damage == "overwrite" {
					err = b.lake.Bucket().Put(ctx, key, strings.NewReader("not parquet any more"), nil)
				} else {
					err = b.lake.Bucket().Delete(ctx, key)
				}
				if err != nil {
					t.Fatal(err)
				}
				damaged, checked, err := b.lake.Verify(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if len(damaged) != 1 || damaged[0].Key != key || checked == 0 {
					t.Fatalf("%s: verify found %v in %d files, want %s", damage, damaged, checked, key)
				}
				t.Logf("%s: %s", damage, damaged[0])

				events(t, c, day, 50, 1.5) // the same rows, from bronze again
				repair, err := b.lake.Write(ctx, c, def, "src", scope, b.stage)
				if err != nil {
					t.Fatal(err)
				}
				if !repair.Changed || repair.SnapshotID == first.SnapshotID {
					t.Fatalf("%s: the write skipped the damaged file: %+v", damage, repair)
				}
				if damaged, _, err := b.lake.Verify(ctx, id); err != nil || len(damaged) != 0 {
					t.Fatalf("%s: after the repair verify finds %v, %v", damage, damaged, err)
				}
				if n, sum := read(t, b, c, id, p, lake.Snapshot{}); n != 50 || sum == "" {
					t.Fatalf("%s: after the repair %s has %d rows", damage, day, n)
				}
				again, err := b.lake.Write(ctx, c, def, "src", scope, b.stage)
				if err != nil || again.Changed {
					t.Fatalf("%s: a write after the repair: %+v %v", damage, again, err)
				}
			}
		})
	}
}

// TestForcedWriteRewrites: a forced write (backfill --force) rewrites a
// partition that already holds its rows, in a new snapshot and file; an
// ordinary write after it finds the rewritten file and commits nothing.
func TestForcedWriteRewrites(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			p := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-15")}
			scope := lake.PartitionScope("event_date", p.Date)
			events(t, c, "2024-01-15", 30, 2)
			first, err := b.lake.Write(ctx, c, def, "src", scope, b.stage)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := b.lake.Files(ctx, id, p, lake.Snapshot{})
			n0, sum0 := read(t, b, c, id, p, lake.Snapshot{})
			forced, err := b.lake.Forcing().Write(ctx, c, def, "src", scope, b.stage)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := b.lake.Files(ctx, id, p, lake.Snapshot{})
			if !forced.Changed || forced.SnapshotID == first.SnapshotID || len(after) != 1 || after[0].URI == before[0].URI {
				t.Fatalf("forced write: %+v, files %v -> %v", forced, before, after)
			}
			if n, sum := read(t, b, c, id, p, lake.Snapshot{}); n != n0 || sum != sum0 {
				t.Fatalf("forced write changed the rows: %d/%s, was %d/%s", n, sum, n0, sum0)
			}
			if again, err := b.lake.Write(ctx, c, def, "src", scope, b.stage); err != nil || again.Changed {
				t.Fatalf("an ordinary write after the forced one: %+v %v", again, err)
			}
		})
	}
}

// writeConcurrently has n writers, each through the lake lakeOf gives it,
// write 10+w events of day 2024-02-01 plus w at once, each retrying its
// lost commit races, and fails the test if any write fails.
func writeConcurrently(t *testing.T, b bundle, def lake.TableDef, n int, lakeOf func(w int, day medtype.Date) *lake.Lake) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < n; w++ {
		day := medtype.MustDate("2024-02-01").AddDays(w)
		l := lakeOf(w, day)
		c := conn(t, b.duck)
		events(t, c, day.String(), 10+w, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- lake.Retry(ctx, func() error {
				_, err := l.Write(ctx, c, def, "src", lake.PartitionScope("event_date", day), b.stage)
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteRefusesAStaleBase: a write whose rows were computed from files
// another writer has since replaced fails with ErrConflict before writing
// any data file; computed again from the fresh base, it commits.
func TestWriteRefusesAStaleBase(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "gold", Name: "current"}
			def := lake.TableDef{ID: id}
			events(t, c, "2024-01-15", 10, 1)
			if _, err := b.lake.Write(ctx, c, def, "src", lake.Scope{}, b.stage); err != nil {
				t.Fatal(err)
			}
			stale, err := b.lake.ScopeFiles(ctx, id, lake.Scope{})
			if err != nil || len(stale.Files) != 1 {
				t.Fatalf("base: %+v %v", stale, err)
			}
			events(t, c, "2024-01-15", 20, 1) // another writer's rows
			if _, err := b.lake.Write(ctx, c, def, "src", lake.Scope{}, b.stage); err != nil {
				t.Fatal(err)
			}
			before := keys(t, b, id)
			events(t, c, "2024-01-15", 30, 1)
			_, err = b.lake.Write(ctx, c, def, "src", lake.Scope{Base: &stale}, b.stage)
			if !errors.Is(err, lake.ErrConflict) {
				t.Fatalf("a write from a stale base: %v, want ErrConflict", err)
			}
			if after := keys(t, b, id); !maps.Equal(after, before) {
				t.Fatalf("the refused write changed the table's objects: %d, were %d", len(after), len(before))
			}
			fresh, err := b.lake.ScopeFiles(ctx, id, lake.Scope{})
			if err != nil {
				t.Fatal(err)
			}
			if w, err := b.lake.Write(ctx, c, def, "src", lake.Scope{Base: &fresh}, b.stage); err != nil || !w.Changed {
				t.Fatalf("a write from the fresh base: %+v %v", w, err)
			}
			if n, _ := read(t, b, c, id, nil, lake.Snapshot{}); n != 30 {
				t.Fatalf("%d rows after the fresh write, want 30", n)
			}
		})
	}
}

// TestRetryOutlastsManyLostRaces: Retry recomputes for as long as it loses
// races (here nine, more than the eight attempts it once gave up after),
// returns other errors at once, and stops when its context ends.
func TestRetryOutlastsManyLostRaces(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := lake.Retry(ctx, func() error {
		if calls++; calls <= 9 {
			return fmt.Errorf("%w: another writer", lake.ErrConflict)
		}
		return nil
	})
	if err != nil || calls != 10 {
		t.Fatalf("after nine lost races: %v, %d calls", err, calls)
	}
	calls = 0
	other := errors.New("disk full")
	if err := lake.Retry(ctx, func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("another error: %v, %d calls", err, calls)
	}
	stopped, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if err := lake.Retry(stopped, func() error { return lake.ErrConflict }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancelled retry: %v", err)
	}
}
