package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

// Retention is what bronze retention did (or would do, on a dry run).
type Retention struct {
	// Cutoff is the first partition date kept.
	Cutoff medtype.Date `json:"cutoff"`
	// Archived are the partitions archived by this call.
	Archived []medtype.PartitionKey `json:"archived"`
	// Files and Bytes count the bronze files deleted.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// ApplyRetention deletes the bronze files of DONE partitions dated before
// bronze.retention, archiving each partition first: if the deletion is cut
// short, the partition is already archived, so discovery does not read
// its missing files as late data, and the next call deletes the rest. A
// partition whose files changed since it was processed is left for the
// next run to reprocess; a file that arrived after the partition was
// archived is never deleted (discovery warns about it instead). With
// bronze.retention 0 it does nothing.
func ApplyRetention(ctx context.Context, deps Deps, dryRun bool) (Retention, error) {
	age := time.Duration(deps.Config.Bronze.Retention)
	if age <= 0 {
		return Retention{}, nil
	}
	res := Retention{Cutoff: medtype.DateOf(deps.now().Add(-age))}
	for _, d := range deps.Domains {
		disc, err := bronze.Discover(ctx, deps.Bucket, d.Name, d.PartitionKey, medtype.Date{})
		if err != nil {
			return res, err
		}
		for _, p := range disc.Partitions {
			if !p.Date.Before(res.Cutoff) {
				break // oldest first
			}
			if err := retain(ctx, deps, p, dryRun, &res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// retain archives one old partition and deletes the bronze files it
// processed.
func retain(ctx context.Context, deps Deps, p bronze.Partition, dryRun bool, res *Retention) error {
	key := medtype.PartitionKey{Domain: p.Domain, Date: p.Date}
	row, err := deps.Store.Get(ctx, key)
	if errors.Is(err, meta.ErrNotFound) {
		return nil // never processed: kept until it is
	}
	if err != nil {
		return err
	}
	if row.ArchivedAt.IsZero() {
		if row.Status != medtype.StateDone || row.FileHash != p.Hash() {
			return nil // not processed as it stands: a run handles it first
		}
		res.Archived = append(res.Archived, key)
		if !dryRun {
			msg := fmt.Sprintf("bronze.retention %s: %d bronze files deleted", deps.Config.Bronze.Retention, len(row.SourceFiles))
			if err := deps.Store.Archive(ctx, key, "", msg, deps.now()); err != nil {
				return err
			}
		}
	}
	var del func(string) error
	if !dryRun {
		del = func(k string) error { return deps.Bucket.Delete(ctx, k) }
	}
	return countProcessed(p, row, res, del)
}

// countProcessed counts (and deletes, when del is set) the partition's
// files that were processed.
func countProcessed(p bronze.Partition, row meta.Partition, res *Retention, del func(string) error) error {
	processed := map[string]bool{}
	for _, k := range row.SourceFiles {
		processed[k] = true
	}
	for _, f := range p.Files {
		if !processed[f.Key] {
			continue
		}
		if del != nil {
			if err := del(f.Key); err != nil {
				return fmt.Errorf("bronze retention: delete %s: %w", f.Key, err)
			}
		}
		res.Files++
		res.Bytes += f.Size
	}
	return nil
}
