package lake_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// keys lists the objects under a table's folder with their sizes.
func keys(t *testing.T, b bundle, id lake.TableID) map[string]int64 {
	t.Helper()
	objs, err := storage.ListAll(context.Background(), b.lake.Bucket(), fmt.Sprintf("warehouse/%s/%s/", id.Namespace, id.Name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, o := range objs {
		out[o.Key] = o.Size
	}
	return out
}

// TestMaintainKeepsRetainedSnapshots: one partition rewritten four times,
// another written once. Maintain with no age limit and two snapshots to
// keep expires the others, deletes the data files only they referenced,
// the manifests and lists, and the metadata files out of the log, and
// frees exactly their bytes; a young orphan stays until the orphan age is
// 0. Every retained snapshot still reads its rows, and a dry run before
// changes nothing.
func TestMaintainKeepsRetainedSnapshots(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "gold", Name: "orders_daily"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			d15 := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-15")}
			d16 := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-16")}
			write := func(p *lake.Partition, n int) lake.Commit {
				t.Helper()
				cm := writeEvents(t, b, c, def, p.Date.String(), n, 1)
				if !cm.Changed {
					t.Fatalf("write %s committed nothing: %+v", p.Date, cm)
				}
				return cm
			}
			write(d16, 7)
			// Keep three metadata files, so that maintain has old ones to delete.
			setProperties(t, b, id, iceberg.Properties{table.MetadataPreviousVersionsMaxKey: "2"})
			var firsts []lake.DataFile
			for _, n := range []int{10, 20, 30} {
				write(d15, n)
				f, _ := b.lake.Files(ctx, id, d15, lake.Snapshot{})
				firsts = append(firsts, f...)
			}
			last := write(d15, 40)
			orphan := fmt.Sprintf("warehouse/%s/%s/data/event_date=2024-01-15/crashed-writer.parquet", id.Namespace, id.Name)
			if err := b.lake.Bucket().Put(ctx, orphan, strings.NewReader("half a file"), nil); err != nil {
				t.Fatal(err)
			}
			m := lake.Maintenance{MinSnapshots: 2, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}

			objects := keys(t, b, id)
			m.DryRun = true
			dry, err := b.lake.Maintain(ctx, c, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(t, b, id); len(got) != len(objects) || dry.Expired == 0 || len(dry.Deleted) == 0 {
				t.Fatalf("dry run: %d objects, was %d; report %+v", len(got), len(objects), dry)
			}
			m.DryRun = false
			r, err := b.lake.Maintain(ctx, c, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if r.Expired != dry.Expired || len(r.Deleted) != len(dry.Deleted) || r.Snapshots != 2 || r.Young != 1 {
				t.Fatalf("maintain: %+v, the dry run said %+v", r, dry)
			}
			after := keys(t, b, id)
			var freed int64
			kinds := map[string]int{}
			for _, d := range r.Deleted {
				if _, still := after[d.Key]; still || objects[d.Key] != d.Size || d.Why != "expired" {
					t.Fatalf("deletion %+v: still there %t, size %d before", d, still, objects[d.Key])
				}
				freed += d.Size
				kinds[kind(d.Key)]++
			}
			// The expiry's commit wrote one metadata file.
			if freed != r.Freed() || len(after)+len(r.Deleted) != len(objects)+1 {
				t.Fatalf("freed %d, report says %d; %d objects left of %d", freed, r.Freed(), len(after), len(objects))
			}
			// The first two versions of 2024-01-15 were live only in expired
			// snapshots; the third is live in the oldest retained one.
			for i, f := range firsts {
				key, _ := storage.KeyOf(b.lake.Bucket(), f.URI)
				if _, kept := after[key]; kept != (i == 2) {
					t.Fatalf("version %d of 2024-01-15: kept %t", i+1, kept)
				}
			}
			if kinds["data"] != 2 || kinds["manifest list"] == 0 || kinds["manifest"] == 0 || kinds["metadata"] == 0 {
				t.Fatalf("deleted %v", kinds)
			}
			t.Logf("deleted %v, %d bytes; %d snapshots expired", kinds, r.Freed(), r.Expired)

			// Every retained snapshot reads, through the metadata, its rows.
			tbl, err := b.lake.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int64]int64{last.SnapshotID: 47}
			for _, s := range tbl.Metadata().Snapshots() {
				n, _ := read(t, b, c, id, nil, lake.Snapshot{ID: s.SnapshotID})
				if w, ok := want[s.SnapshotID]; (ok && n != w) || (!ok && n != 37) {
					t.Fatalf("snapshot %d reads %d rows", s.SnapshotID, n)
				}
			}
			if damaged, _, err := b.lake.Verify(ctx, id); err != nil || len(damaged) > 0 {
				t.Fatalf("verify after maintain: %v %v", damaged, err)
			}

			// A second pass has nothing to expire; with no orphan age the
			// orphan goes.
			m.OrphanAge = 0
			r, err = b.lake.Maintain(ctx, c, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if r.Expired != 0 || len(r.Deleted) != 1 || r.Deleted[0].Key != orphan || r.Deleted[0].Why != "orphan" {
				t.Fatalf("second pass: %+v", r)
			}
			if n, _ := read(t, b, c, id, nil, lake.Snapshot{}); n != 47 {
				t.Fatalf("after maintain the table has %d rows", n)
			}
		})
	}
}

// kind names what a table file is by its key.
func kind(key string) string {
	switch {
	case strings.Contains(key, "/data/"):
		return "data"
	case strings.HasSuffix(key, ".metadata.json"):
		return "metadata"
	case strings.Contains(filepath.Base(key), "snap-"):
		return "manifest list"
	case strings.HasSuffix(key, ".avro"):
		return "manifest"
	}
	return key
}

// TestMaintainCompactsSmallFiles: a partition of three small files (one
// written by Medallion, two added by another writer) becomes one file in
// one snapshot, with the same rows; the file is named by its rows'
// fingerprint, so writing those rows again commits nothing. The other
// partition, of one file, is left alone.
func TestMaintainCompactsSmallFiles(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			d15 := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-15")}
			for _, day := range []string{"2024-01-15", "2024-01-16"} {
				writeEvents(t, b, c, def, day, 10, 1)
			}
			addOtherWriterFiles(t, b, c, id, "2024-01-15", 2)
			n0, sum0 := read(t, b, c, id, d15, lake.Snapshot{})
			if files, _ := b.lake.Files(ctx, id, d15, lake.Snapshot{}); len(files) != 3 || n0 != 20 {
				t.Fatalf("before: %d files, %d rows", len(files), n0)
			}

			m := lake.Maintenance{MinSnapshots: 1, SnapshotRetention: 7 * 24 * time.Hour, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}
			r, err := b.lake.Maintain(ctx, c, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Compacted) != 1 || r.Compacted[0].Files != 3 {
				t.Fatalf("compacted %+v", r.Compacted)
			}
			files, _ := b.lake.Files(ctx, id, d15, lake.Snapshot{})
			n, sum := read(t, b, c, id, d15, lake.Snapshot{})
			if len(files) != 1 || n != n0 || sum != sum0 {
				t.Fatalf("after: %d files, %d rows sum %s (was %s)", len(files), n, sum, sum0)
			}
			if all, _ := b.lake.Files(ctx, id, nil, lake.Snapshot{}); len(all) != 2 {
				t.Fatalf("the table has %d files", len(all))
			}
			if r, err := b.lake.Maintain(ctx, c, id, m); err != nil || len(r.Compacted) != 0 {
				t.Fatalf("a second maintain: %+v %v", r, err)
			}
			exec(t, c, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM "+readAll(t, b, files))
			if again, err := b.lake.Write(ctx, c, def, "src", lake.PartitionScope("event_date", d15.Date), b.stage); err != nil || again.Changed {
				t.Fatalf("writing the compacted rows again: %+v %v", again, err)
			}
		})
	}
}

func readAll(t *testing.T, b bundle, files []lake.DataFile) string {
	t.Helper()
	paths, err := b.lake.Fetch(context.Background(), files, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = "'" + p + "'"
	}
	return "read_parquet([" + strings.Join(quoted, ",") + "])"
}

// TestMaintainMergesManifests: twelve commits leave twelve manifests to
// plan from; maintain merges them into one and every row still reads.
func TestMaintainMergesManifests(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			day := medtype.MustDate("2024-01-01")
			for i := range 12 {
				writeEvents(t, b, c, def, day.AddDays(i).String(), 3, 1)
			}
			m := lake.Maintenance{MinSnapshots: 1, SnapshotRetention: time.Hour, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}
			r, err := b.lake.Maintain(ctx, c, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if r.ManifestsBefore != 12 || r.ManifestsAfter != 1 {
				t.Fatalf("manifests %d -> %d", r.ManifestsBefore, r.ManifestsAfter)
			}
			if n, _ := read(t, b, c, id, nil, lake.Snapshot{}); n != 36 {
				t.Fatalf("after the merge the table has %d rows", n)
			}
			if r, err := b.lake.Maintain(ctx, c, id, m); err != nil || r.ManifestsBefore != 1 || r.ManifestsAfter != 1 {
				t.Fatalf("a second maintain: %+v %v", r, err)
			}
		})
	}
}

// TestMaintainClustersManifestsByMonth: twenty daily commits across two
// months merge into one manifest per month, so a week's query plans from
// one; later commits in the second month rewrite only its manifests and
// leave the first month's alone.
func TestMaintainClustersManifestsByMonth(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			day := medtype.MustDate("2024-01-22")
			for i := range 20 {
				writeEvents(t, b, c, def, day.AddDays(i).String(), 3, 1)
			}
			m := lake.Maintenance{MinSnapshots: 1, SnapshotRetention: time.Hour, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}
			if r, err := b.lake.Maintain(ctx, c, id, m); err != nil || r.ManifestsBefore != 20 || r.ManifestsAfter != 2 {
				t.Fatalf("first maintain: %+v %v", r, err)
			}
			first := manifestSpans(t, b, id)
			if want := []string{"2024-01-22..2024-01-31", "2024-02-01..2024-02-10"}; !slices.Equal(spans(first), want) {
				t.Fatalf("manifests span %v, want %v", first, want)
			}
			for i := range 9 {
				writeEvents(t, b, c, def, day.AddDays(20+i).String(), 3, 1)
			}
			if r, err := b.lake.Maintain(ctx, c, id, m); err != nil || r.ManifestsBefore != 11 || r.ManifestsAfter != 2 {
				t.Fatalf("second maintain: %+v %v", r, err)
			}
			second := manifestSpans(t, b, id)
			if want := []string{"2024-01-22..2024-01-31", "2024-02-01..2024-02-19"}; !slices.Equal(spans(second), want) {
				t.Fatalf("manifests span %v, want %v", second, want)
			}
			if first[0] != second[0] {
				t.Fatalf("January's settled manifest was rewritten: %s, then %s", first[0], second[0])
			}
			if n, _ := read(t, b, c, id, nil, lake.Snapshot{}); n != 29*3 {
				t.Fatalf("after the merges the table has %d rows", n)
			}
			if n, _ := read(t, b, c, id, &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-02-05")}, lake.Snapshot{}); n != 3 {
				t.Fatalf("one day has %d rows", n)
			}
		})
	}
}

// manifestSpans lists the current snapshot's manifests as
// "first..last path", first and last being the partition dates they hold.
func manifestSpans(t *testing.T, b bundle, id lake.TableID) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := b.lake.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := tbl.CurrentSnapshot().Manifests(fs)
	if err != nil {
		t.Fatal(err)
	}
	date := func(b *[]byte) string {
		return time.Unix(int64(int32(binary.LittleEndian.Uint32(*b)))*86400, 0).UTC().Format(time.DateOnly)
	}
	var out []string
	for _, m := range manifests {
		p := m.Partitions()[0]
		out = append(out, date(p.LowerBound)+".."+date(p.UpperBound)+" "+m.FilePath())
	}
	slices.Sort(out)
	return out
}

// spans drops the paths of manifestSpans.
func spans(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i], _, _ = strings.Cut(x, " ")
	}
	return out
}

// TestWriteNeverReusesAName: rows written, replaced, then written again go
// under a new name while the first file still exists, so maintain can
// delete that file (referenced only by expiring snapshots) without racing
// the writer that brought its rows back.
func TestWriteNeverReusesAName(t *testing.T) {
	b := backends(t)["sqlite+local"](t)
	ctx := context.Background()
	c := conn(t, b.duck)
	id := lake.TableID{Namespace: "silver", Name: "events"}
	def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
	p := &lake.Partition{Column: "event_date", Date: medtype.MustDate("2024-01-15")}
	var uris []string
	for _, n := range []int{10, 20, 10} {
		writeEvents(t, b, c, def, "2024-01-15", n, 1)
		files, _ := b.lake.Files(ctx, id, p, lake.Snapshot{})
		uris = append(uris, files[0].URI)
	}
	if uris[2] == uris[0] || uris[2] == uris[1] {
		t.Fatalf("the rows written again reuse a name: %v", uris)
	}
	if n, _ := read(t, b, c, id, p, lake.Snapshot{}); n != 10 {
		t.Fatalf("%d rows", n)
	}
}

// TestMaintainBesideAWriter: maintain runs over and over, with no
// retention window, while a writer commits twenty partitions; their
// commits race. Neither fails, every partition reads its rows after, and
// no live file was deleted (verify is clean).
func TestMaintainBesideAWriter(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			wc, mc := conn(t, b.duck), conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			writeEvents(t, b, wc, def, "2024-01-01", 1, 1) // the table exists before maintain starts
			day := medtype.MustDate("2024-01-01")
			done := make(chan error, 1)
			go func() {
				var err error
				for i := 1; i <= 20 && err == nil; i++ {
					d := day.AddDays(i)
					err = lake.Retry(ctx, func() error {
						_, err := wc.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE src AS SELECT DATE '%s' AS event_date, 'e-' || i AS event_id,
							CAST(i AS DECIMAL(12,2)) AS amount, TIMESTAMP '%s 10:00:00' AS ts FROM range(%d) r(i)`, d, d, i))
						if err == nil {
							_, err = b.lake.Write(ctx, wc, def, "src", lake.PartitionScope("event_date", d), b.stage)
						}
						return err
					})
				}
				done <- err
			}()
			m := lake.Maintenance{MinSnapshots: 1, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}
			passes, expired := 0, 0
			for running := true; running; passes++ {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("the writer: %v", err)
					}
					running = false
				default:
				}
				r, err := b.lake.Maintain(ctx, mc, id, m)
				if err != nil {
					t.Fatalf("maintain pass %d: %v", passes, err)
				}
				expired += r.Expired
			}
			for i := 1; i <= 20; i++ {
				p := &lake.Partition{Column: "event_date", Date: day.AddDays(i)}
				if n, _ := read(t, b, mc, id, p, lake.Snapshot{}); n != int64(i) {
					t.Fatalf("%s has %d rows, want %d", p.Date, n, i)
				}
			}
			if damaged, _, err := b.lake.Verify(ctx, id); err != nil || len(damaged) > 0 {
				t.Fatalf("after maintain beside a writer: %v %v", damaged, err)
			}
			t.Logf("%d maintain passes expired %d snapshots", passes, expired)
		})
	}
}

// addOtherWriterFiles commits n small files into one date partition of a
// table (partitioned by event_date) the way another Iceberg writer would.
func addOtherWriterFiles(t *testing.T, b bundle, c *sql.Conn, id lake.TableID, day string, n int) {
	t.Helper()
	ctx := context.Background()
	var added []string
	for i := range n {
		local := filepath.Join(t.TempDir(), "extra.parquet")
		exec(t, c, fmt.Sprintf(`COPY (SELECT DATE '%s' AS event_date, 'x%d-' || i AS event_id,
			CAST(i AS DECIMAL(12,2)) AS amount, TIMESTAMP '%s 12:00:00' AS ts FROM range(5) r(i)) TO '%s' (FORMAT parquet)`, day, i, day, local))
		key := fmt.Sprintf("warehouse/%s/%s/data/event_date=%s/other-writer-%d-%d.parquet", id.Namespace, id.Name, day, time.Now().UnixNano(), i)
		if err := storage.PutFile(ctx, b.lake.Bucket(), key, local, nil); err != nil {
			t.Fatal(err)
		}
		added = append(added, b.lake.Bucket().URI(key))
	}
	tbl, err := b.lake.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.NewTransaction()
	if err := tx.AddFiles(ctx, added, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMaintainSkipsUnchangedTable: a table still where its last full pass
// left it is neither compacted nor swept until the orphan age has passed
// since that pass; a table that changed, or whose snapshots expire, gets
// the full pass.
func TestMaintainSkipsUnchangedTable(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			c := conn(t, b.duck)
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}
			for _, day := range []string{"2024-01-15", "2024-01-16"} {
				writeEvents(t, b, c, def, day, 10, 1)
			}
			orphan := fmt.Sprintf("warehouse/%s/%s/data/crashed-writer.parquet", id.Namespace, id.Name)
			if err := b.lake.Bucket().Put(ctx, orphan, strings.NewReader("half a file"), nil); err != nil {
				t.Fatal(err)
			}
			m := lake.Maintenance{MinSnapshots: 1, SnapshotRetention: 7 * 24 * time.Hour, OrphanAge: time.Hour, CompactTargetSize: 128 << 20, Stage: b.stage}
			pass := func(last lake.LastPass) lake.Report {
				t.Helper()
				m.Last = last
				r, err := b.lake.Maintain(ctx, c, id, m)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			first := pass(lake.LastPass{})
			tbl, err := b.lake.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !first.Full || first.Young != 1 || first.Location != tbl.MetadataLocation() {
				t.Fatalf("first pass: %+v, table at %s", first, tbl.MetadataLocation())
			}
			if r := pass(lake.LastPass{Location: first.Location, At: time.Now().Add(-10 * time.Minute)}); r.Full || r.Young != 0 {
				t.Fatalf("unchanged table swept: %+v", r)
			}
			if r := pass(lake.LastPass{Location: first.Location, At: time.Now().Add(-2 * time.Hour)}); !r.Full || r.Young != 1 {
				t.Fatalf("unchanged table past the orphan age not swept: %+v", r)
			}

			addOtherWriterFiles(t, b, c, id, "2024-01-16", 2)
			changed := pass(lake.LastPass{Location: first.Location, At: time.Now()})
			if !changed.Full || len(changed.Compacted) != 1 || changed.Compacted[0].Files != 3 {
				t.Fatalf("changed table: %+v", changed)
			}
			if files, _ := b.lake.Files(ctx, id, nil, lake.Snapshot{}); len(files) != 2 {
				t.Fatalf("after compaction the table has %d files", len(files))
			}

			m.SnapshotRetention = 0
			r := pass(lake.LastPass{Location: changed.Location, At: time.Now()})
			if !r.Full || r.Expired == 0 || len(r.Deleted) == 0 {
				t.Fatalf("expiring an unchanged table: %+v", r)
			}
			if damaged, _, err := b.lake.Verify(ctx, id); err != nil || len(damaged) > 0 {
				t.Fatalf("verify: %v %v", damaged, err)
			}
		})
	}
}
