package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
)

// TestBronzeRetention: five days processed; retention of 10 days, on day
// 14, archives the first three days of every domain and deletes exactly
// their bronze files, even when an earlier pass was cut short after
// archiving. A run after it sees no late data and changes no table; a
// backfill over an archived day refuses, naming it; files that arrive for
// an archived day are reported, not processed, and not deleted.
func TestBronzeRetention(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, backend, nil, nil)
			msgs, err := generate.Generate(generate.Options{Seed: 5, Start: medtype.MustDate("2024-01-01"), Days: 5, EventsPerDay: 400, Malformed: 0.01, Late: 0.05})
			must(t, err)
			e.write(t, msgs, false)
			allDone(t, e.run(t, pipeline.Options{}))
			m := buildModel(msgs, false)
			snaps := e.snapshots(t)

			// A pass cut short: 2024-01-03 of orders archived, one of its files
			// deleted, the rest still there. The next run must not see late data.
			cut := medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-01-03")}
			p := e.state(t, "orders", "2024-01-03")
			must(t, e.deps.Store.Archive(ctx, cut, "", "test: cut short", time.Now()))
			must(t, e.deps.Bucket.Delete(ctx, p.SourceFiles[0]))
			sum := e.run(t, pipeline.Options{})
			for _, ds := range sum.Domains {
				if ds.Late != 0 || ds.Processed != 0 {
					t.Fatalf("a run after a partial deletion did work: %+v", *ds)
				}
			}

			e.cfg.Bronze.Retention = config.Duration(10 * config.Day)
			at := e.deps
			at.Now = func() time.Time { return time.Date(2024, 1, 14, 6, 0, 0, 0, time.UTC) }
			dry, err := pipeline.ApplyRetention(ctx, at, true)
			must(t, err)
			before := bronzeFiles(t, e)
			ret, err := pipeline.ApplyRetention(ctx, at, false)
			must(t, err)
			if ret.Cutoff.String() != "2024-01-04" || len(ret.Archived) != 11 || ret.Files != dry.Files || len(dry.Archived) != 11 {
				t.Fatalf("retention: %+v (dry run %+v), want 11 partitions archived (orders/2024-01-03 was already)", ret, dry)
			}
			after := bronzeFiles(t, e)
			for key, n := range before {
				old := key.Date.Before(ret.Cutoff)
				if (old && after[key] != 0) || (!old && after[key] != n) {
					t.Fatalf("%s: %d bronze files, then %d", key, n, after[key])
				}
			}
			for _, key := range ret.Archived {
				if p := e.state(t, key.Domain, key.Date.String()); p.Status != medtype.StateDone || p.ArchivedAt.IsZero() {
					t.Fatalf("%s: %s, archived at %v", key, p.Status, p.ArchivedAt)
				}
			}

			sum = e.run(t, pipeline.Options{})
			for _, ds := range sum.Domains {
				if ds.Late != 0 || ds.Processed != 0 || ds.Discovered != 2 {
					t.Fatalf("a run after retention: %+v", *ds)
				}
			}
			if got := e.snapshots(t); fmt.Sprint(got) != fmt.Sprint(snaps) {
				t.Fatalf("retention changed tables:\n%v\n%v", snaps, got)
			}
			e.checkTables(t, m)
			counts, err := e.deps.Store.Summary(ctx)
			must(t, err)
			archived := 0
			for _, c := range counts {
				if c.State == medtype.StateArchived {
					archived += c.Count
				}
			}
			if archived != 12 {
				t.Fatalf("status counts %d archived partitions: %v", archived, counts)
			}

			_, err = pipeline.Run(ctx, e.deps, pipeline.Options{Command: "backfill", Domains: []string{"orders"},
				From: medtype.MustDate("2024-01-02"), To: medtype.MustDate("2024-01-05"), Reprocess: "all"})
			if !errors.Is(err, meta.ErrArchived) || !strings.Contains(err.Error(), "orders/2024-01-02, orders/2024-01-03") {
				t.Fatalf("backfill over archived days: %v", err)
			}
			if p := e.state(t, "orders", "2024-01-05"); p.Status != medtype.StateDone {
				t.Fatalf("the refused backfill reset orders/2024-01-05: %s", p.Status)
			}

			// Late files for archived days: reported, left alone.
			e.write(t, msgs, true)
			sum = e.run(t, pipeline.Options{})
			if len(sum.ArchivedLate) == 0 {
				t.Fatal("files for archived partitions were not reported")
			}
			lateFiles := bronzeFiles(t, e)
			ret, err = pipeline.ApplyRetention(ctx, at, false)
			must(t, err)
			if len(ret.Archived) != 0 || ret.Files != 0 || fmt.Sprint(bronzeFiles(t, e)) != fmt.Sprint(lateFiles) {
				t.Fatalf("retention touched late files of archived partitions: %+v", ret)
			}
			t.Logf("reported late files for %d archived partitions", len(sum.ArchivedLate))
		})
	}
}

// bronzeFiles counts bronze files per partition.
func bronzeFiles(t *testing.T, e *env) map[medtype.PartitionKey]int {
	t.Helper()
	out := map[medtype.PartitionKey]int{}
	for _, d := range e.deps.Domains {
		disc, err := bronze.Discover(context.Background(), e.deps.Bucket, d.Name, d.PartitionKey, medtype.Date{})
		must(t, err)
		for _, p := range disc.Partitions {
			out[medtype.PartitionKey{Domain: d.Name, Date: p.Date}] = len(p.Files)
		}
	}
	return out
}
