package pipeline_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
)

// TestIncrementalMaintain: maintain after a run records each table's full
// pass in the meta store; the next incremental maintain skips every table
// (none changed), and after late data it does full passes only over the
// tables the reprocessing wrote. An explicit maintain always does the
// full pass.
func TestIncrementalMaintain(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, backend, nil, nil)
			e.cfg.Lake.OrphanAge = config.Duration(time.Hour)
			msgs, err := generate.Generate(generate.Options{Seed: 9, Start: medtype.MustDate("2024-01-01"), Days: 2, EventsPerDay: 300, Late: 0.1})
			must(t, err)
			e.write(t, msgs, false)
			allDone(t, e.run(t, pipeline.Options{}))
			incremental := pipeline.MaintainOptions{Incremental: true}
			full := func(reports []lake.Report) map[string]bool {
				t.Helper()
				out := map[string]bool{}
				for _, r := range reports {
					if r.Full {
						out[r.Table.String()] = true
					}
				}
				return out
			}

			first, err := pipeline.Maintain(ctx, e.deps, nil, incremental)
			must(t, err)
			recorded, err := e.deps.Store.Maintained(ctx)
			must(t, err)
			if len(first) == 0 || len(full(first)) != len(first) || len(recorded) != len(first) {
				t.Fatalf("first maintain: %d tables, %d full passes, %d recorded", len(first), len(full(first)), len(recorded))
			}
			for _, r := range first {
				if rec := recorded[r.Table.String()]; rec.MetadataLocation != r.Location || time.Since(rec.At) > time.Minute {
					t.Fatalf("%s recorded as %+v, maintained at %s", r.Table, rec, r.Location)
				}
			}
			idle, err := pipeline.Maintain(ctx, e.deps, nil, incremental)
			must(t, err)
			if got := full(idle); len(idle) != len(first) || len(got) != 0 {
				t.Fatalf("idle maintain did full passes over %v", got)
			}

			e.write(t, msgs, true) // late data for both days: the run rewrites some tables
			sum := e.run(t, pipeline.Options{})
			late := 0
			for _, ds := range sum.Domains {
				late += ds.Late
			}
			changed := map[string]bool{}
			for _, r := range first {
				tbl, err := e.deps.Lake.Load(ctx, r.Table)
				must(t, err)
				if tbl.MetadataLocation() != r.Location {
					changed[r.Table.String()] = true
				}
			}
			after, err := pipeline.Maintain(ctx, e.deps, nil, incremental)
			must(t, err)
			if got := full(after); late == 0 || len(changed) == 0 || len(changed) == len(after) || !maps.Equal(got, changed) {
				t.Fatalf("after %d late partitions, full passes over %v; the tables that changed: %v", late, got, changed)
			}
			explicit, err := pipeline.Maintain(ctx, e.deps, nil, pipeline.MaintainOptions{})
			must(t, err)
			if len(full(explicit)) != len(explicit) {
				t.Fatalf("explicit maintain skipped tables: %d full of %d", len(full(explicit)), len(explicit))
			}
		})
	}
}
