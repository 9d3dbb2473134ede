package pipeline

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medallionlake/medallion/lake"
)

// Maintain runs lake maintenance (compaction, manifest merge, snapshot
// expiry, deletion of unreferenced files) on the given tables, or on every
// silver, gold and quarantine table when tables is empty, with the
// settings of the lake section. It stops at the first table that fails
// and returns the reports of those done.
func Maintain(ctx context.Context, deps Deps, tables []lake.TableID, dryRun bool) ([]lake.Report, error) {
	if len(tables) == 0 {
		var err error
		if tables, err = deps.Lake.AllTables(ctx); err != nil {
			return nil, err
		}
	}
	conn, err := deps.Duck.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stage, err := deps.Duck.StageDir("maintain-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	cfg := deps.Config.Lake
	m := lake.Maintenance{
		SnapshotRetention: time.Duration(cfg.SnapshotRetention),
		MinSnapshots:      cfg.MinSnapshots,
		OrphanAge:         time.Duration(cfg.OrphanAge),
		CompactTargetSize: int64(cfg.CompactTargetSize),
		DryRun:            dryRun,
		Stage:             stage,
	}
	var reports []lake.Report
	for _, id := range tables {
		start := time.Now()
		r, err := deps.Lake.Maintain(ctx, conn, id, m)
		if err != nil {
			return reports, err
		}
		deps.Log.Debug("maintained", "table", id, "expired", r.Expired, "deleted", len(r.Deleted),
			"freed", r.Freed(), "took", time.Since(start).Round(time.Millisecond))
		reports = append(reports, r)
	}
	return reports, nil
}

// OrphanAgeWarning is the warning a short lake.orphan_age deserves, or "".
func OrphanAgeWarning(deps Deps) string {
	age := time.Duration(deps.Config.Lake.OrphanAge)
	if age >= time.Hour {
		return ""
	}
	return fmt.Sprintf("lake.orphan_age is %s: a file a concurrent writer has written but not yet committed could be deleted as an orphan if its commit takes longer (an hour or more is safe)", age)
}
