package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
)

// TestRunListsRecentBronze: between full listings a run lists only the
// bronze partitions dated within bronze.listing.recent of the newest, so
// late files in older ones wait for the next full listing (when
// full_every has passed, or with --full-listing) and are then processed,
// while a new partition of any date is processed at once: nothing is
// lost, and the tables end equal to the model.
func TestRunListsRecentBronze(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil, nil)
			e.cfg.Bronze.Listing = config.Listing{Recent: config.Duration(2 * config.Day), FullEvery: config.Duration(time.Hour)}
			now := time.Now()
			e.deps.Now = func() time.Time { return now }
			msgs, err := generate.Generate(generate.Options{Seed: 11, Start: medtype.MustDate("2024-02-25"), Days: 7, EventsPerDay: 800, Malformed: 0.005, Late: 0.05})
			must(t, err)
			e.write(t, msgs, false)
			restore := hold(t, e, medtype.MustDate("2024-02-25")) // it arrives after the first run
			sum := e.run(t, pipeline.Options{})                   // the first run lists all
			allDone(t, sum)
			for _, ds := range sum.Domains {
				if ds.New != 6 || ds.ListedSince != "" {
					t.Fatalf("first run: %+v", *ds)
				}
			}
			oldFiles := len(e.state(t, "events", "2024-02-26").SourceFiles)
			recentFiles := len(e.state(t, "events", "2024-03-01").SourceFiles)

			e.write(t, msgs, true) // late files in every day
			restore()
			now = now.Add(53 * time.Minute) // under nine tenths of full_every
			sum = e.run(t, pipeline.Options{})
			allDone(t, sum)
			for _, ds := range sum.Domains {
				if ds.ListedSince != "2024-02-29" || ds.Discovered != 4 || ds.New != 1 || ds.Late == 0 || ds.Late > 3 {
					t.Fatalf("a run between full listings: %+v", *ds)
				}
			}
			if p := e.state(t, "events", "2024-02-26"); len(p.SourceFiles) != oldFiles || p.Status != medtype.StateDone {
				t.Fatalf("a partition older than the recent window was listed: %d files (had %d), %s", len(p.SourceFiles), oldFiles, p.Status)
			}
			if p := e.state(t, "events", "2024-03-01"); p.Status != medtype.StateDone || len(p.SourceFiles) <= recentFiles {
				t.Fatalf("a recent partition's late files were not processed: %d files (had %d), %s", len(p.SourceFiles), recentFiles, p.Status)
			}

			opts := pipeline.Options{}
			if backend == "sqlite+local" {
				opts.FullListing = true
			} else {
				now = now.Add(time.Minute) // full_every has passed
			}
			sum = e.run(t, opts)
			allDone(t, sum)
			late := 0
			for _, ds := range sum.Domains {
				if ds.ListedSince != "" || ds.Discovered != 7 {
					t.Fatalf("a full listing: %+v", *ds)
				}
				late += ds.Late
			}
			if p := e.state(t, "events", "2024-02-26"); len(p.SourceFiles) <= oldFiles || late == 0 {
				t.Fatalf("the full listing missed the old partition's late files: %d files, %d late", len(p.SourceFiles), late)
			}
			e.checkTables(t, buildModel(msgs, true))
		})
	}
}

// hold takes every domain's bronze files of one date away, and returns
// the function that puts them back as they were.
func hold(t *testing.T, e *env, date medtype.Date) func() {
	t.Helper()
	ctx := context.Background()
	type object struct {
		key  string
		body []byte
		meta map[string]string
	}
	var held []object
	for _, d := range e.deps.Domains {
		p, err := bronze.ListPartition(ctx, e.deps.Bucket, d.Name, d.PartitionKey, date)
		must(t, err)
		for _, f := range p.Files {
			st, err := e.deps.Bucket.Stat(ctx, f.Key)
			must(t, err)
			r, err := e.deps.Bucket.Get(ctx, f.Key)
			must(t, err)
			body, err := io.ReadAll(r)
			r.Close()
			must(t, err)
			held = append(held, object{f.Key, body, st.Metadata})
			must(t, e.deps.Bucket.Delete(ctx, f.Key))
		}
	}
	if len(held) == 0 {
		t.Fatalf("no bronze file of %s to hold", date)
	}
	return func() {
		for _, o := range held {
			must(t, e.deps.Bucket.Put(ctx, o.key, bytes.NewReader(o.body), o.meta))
		}
	}
}
