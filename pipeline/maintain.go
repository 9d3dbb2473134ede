package pipeline

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/meta"
)

// MaintainOptions says how thorough a maintenance is.
type MaintainOptions struct {
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// Incremental skips what cannot have changed since a table's last full
	// pass (see lake.Maintenance.Last): the form maintain_after_run uses,
	// so that an idle run stays cheap however old the lake is.
	Incremental bool
}

// Maintain runs lake maintenance (compaction, manifest merge, snapshot
// expiry, deletion of unreferenced files) on the given tables, or on every
// silver, gold and quarantine table when tables is empty, with the
// settings of the lake section, and records each table's full passes in
// the meta store. It stops at the first table that fails and returns the
// reports of those done.
func Maintain(ctx context.Context, deps Deps, tables []lake.TableID, opts MaintainOptions) ([]lake.Report, error) {
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
		DryRun:            opts.DryRun,
		Stage:             stage,
	}
	last := map[string]meta.Maintained{}
	if opts.Incremental {
		if last, err = deps.Store.Maintained(ctx); err != nil {
			return nil, err
		}
	}
	var reports []lake.Report
	for _, id := range tables {
		start := time.Now()
		m.Last = lake.LastPass{Location: last[id.String()].MetadataLocation, At: last[id.String()].At}
		r, err := deps.Lake.Maintain(ctx, conn, id, m)
		if err != nil {
			return reports, err
		}
		if r.Full && !opts.DryRun {
			if err := deps.Store.RecordMaintained(ctx, meta.Maintained{Table: id.String(), MetadataLocation: r.Location, At: start}); err != nil {
				return reports, err
			}
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
